"""What every section of modelfunc.yaml shares: strict models (an unknown field is refused, a read config is
frozen) and the rule for an app setting's name (the connections and the Redis setting name one)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def setting_name(value: str) -> str:
    if not value or not all(c.isalnum() or c in "_:" for c in value) or value[0].isdigit():
        raise ValueError(
            f"{value!r} is not a valid app setting name: use letters, digits and underscores, "
            "e.g. 'TriggerConnectionString'"
        )
    return value
