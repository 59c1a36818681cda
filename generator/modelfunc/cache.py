"""``cache:`` in modelfunc.yaml: an optional cache of predictions, kept by the runtime in Redis
(modelfunc_runtime.PredictionCache)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from .sections import Strict, setting_name


class RedisCache(Strict):
    """Prediction cache in Redis: the connection string comes from an app setting, never from this file."""

    connection: str = "RedisConnectionString"
    ttl_seconds: int = Field(default=3600, ge=1, le=30 * 24 * 3600, strict=True)

    @field_validator("connection")
    @classmethod
    def _conn(cls, v: str) -> str:
        return setting_name(v)


class Cache(Strict):
    """``cache: {redis: {...}}``: an optional cache of predictions. The app gets the setting, and the runtime
    keeps successful answers in that Redis (modelfunc_runtime.PredictionCache)."""

    redis: RedisCache | None = None

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        # `redis:` with nothing after it means "Redis with every default".
        if isinstance(data, dict) and "redis" in data and data["redis"] is None:
            data = {**data, "redis": {}}
        return data

    @model_validator(mode="after")
    def _backend(self) -> Cache:
        if self.redis is None:
            raise ValueError("names no cache backend; use redis, e.g. 'cache: {redis: {connection: "
                             "RedisConnectionString}}' (or leave the cache section out)")
        return self
