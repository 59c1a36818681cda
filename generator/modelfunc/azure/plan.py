"""Read, compare, then write only what differs — or, in a dry run, write nothing and keep the plan.

Every resource step goes through :meth:`Run.step`: the caller has already read the current state (GET)
and says whether it must ``create``, ``update`` or leave it ``unchanged``; the step is recorded in the
:class:`Plan` and, unless this is a dry run, applied. Long operations are polled with progress and a
deadline (:meth:`Run.wait`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import DeployError
from ..progress import Progress, quiet
from ..redact import CONNECTION_KEYS, SECRET_NAME_PARTS
from .clients import Clients, arm_call

# Setting names whose values are never shown, and values that look like secrets whatever their name: redact's lists.
_SECRET_VALUE_PARTS = tuple(f"{key}=" for key in (*CONNECTION_KEYS, "sig"))


def is_secret(name: str, value: str | None) -> bool:
    lowered = name.lower()
    if lowered.endswith(("__accountname", "__blobserviceuri", "__queueserviceuri", "__serviceuri",
                         "__fullyqualifiednamespace", "__credential", "__clientid")):
        return False  # identity-based connection settings hold names and URLs, not secrets
    if any(part in lowered for part in SECRET_NAME_PARTS):
        return True
    v = (value or "").lower().replace(" ", "")
    return any(part in v for part in _SECRET_VALUE_PARTS)


def show(name: str, value: str | None) -> str:
    """A setting's value as a plan may print it: secrets masked."""
    if value is None:
        return "(none)"
    return "***" if is_secret(name, value) else repr(value)


@dataclass
class Change:
    resource: str
    action: str  # create | update | unchanged | delete
    detail: str = ""

    def render(self) -> str:
        mark = {"create": "+", "update": "~", "unchanged": "=", "delete": "-"}.get(self.action, "?")
        return f"  {mark} {self.action:<9} {self.resource}" + (f"  ({self.detail})" if self.detail else "")


@dataclass
class SettingChange:
    target: str
    name: str
    action: str  # add | change | unchanged | kept
    old: str | None
    new: str | None

    def render(self) -> str:
        mark = {"add": "+", "change": "~", "unchanged": "=", "kept": "="}[self.action]
        if self.action == "change":
            values = f"{show(self.name, self.old)} -> {show(self.name, self.new)}"
        elif self.action == "kept":
            values = f"{show(self.name, self.old)} (not modelfunc's; kept)"
        else:
            values = show(self.name, self.new)
        return f"  {mark} {self.name} = {values}"


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    settings: list[SettingChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def mutating(self) -> list[Change]:
        return [c for c in self.changes if c.action != "unchanged"]

    def render(self) -> str:
        lines = ["Plan:"]
        lines += [c.render() for c in self.changes]
        targets = list(dict.fromkeys(s.target for s in self.settings))
        for target in targets:
            lines.append(f"App settings of {target} (read, merged, written; secret values masked):")
            lines += [s.render() for s in self.settings if s.target == target]
        lines += [f"note: {n}" for n in self.notes]
        n = len(self.mutating)
        lines.append(f"{n} change(s)" if n else "No changes: Azure already matches.")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "changes": [{"resource": c.resource, "action": c.action, "detail": c.detail} for c in self.changes],
            "settings": [{"target": s.target, "name": s.name, "action": s.action, "old": show(s.name, s.old),
                          "new": show(s.name, s.new)} for s in self.settings],
            "notes": list(self.notes),
        }


@dataclass
class Run:
    """One deploy/plan/destroy run: the clients, dry-run flag, progress, clock and the plan being built."""

    clients: Clients
    dry_run: bool = False
    progress: Progress = quiet
    timeout: float = 900.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    plan: Plan = field(default_factory=Plan)

    def step(self, resource: str, action: str, apply: Callable[[], Any] | None = None, *, detail: str = "") -> Any:
        """Record ``action`` on ``resource``; apply it unless this is a dry run or nothing changes."""
        self.plan.changes.append(Change(resource, action, detail))
        if action == "unchanged" or apply is None:
            return None
        if self.dry_run:
            return None
        self.progress(f"==> {action} {resource}" + (f" ({detail})" if detail else ""))
        with arm_call(f"{action} {resource}"):
            return apply()

    def wait(self, poller: Any, what: str, *, timeout: float | None = None) -> Any:
        """Poll an LROPoller with progress until done or the deadline; returns its result."""
        limit = self.timeout if timeout is None else timeout
        started = self.clock()
        next_note = 15.0
        with arm_call(what):
            while not poller.done():
                elapsed = self.clock() - started
                if elapsed > limit:
                    raise DeployError(f"{what} did not finish within {limit:.0f} s (Azure says: {poller.status()})",
                                      hint="raise --timeout; Azure may still finish it, and deploying again "
                                           "continues from where this stopped")
                if elapsed >= next_note:
                    self.progress(f"    {what}: {poller.status()} ({elapsed:.0f} s)")
                    next_note += 15.0
                poller.wait(min(5.0, max(limit - elapsed, 0.1)))
            return poller.result()

    def settings_diff(self, target: str, current: Mapping[str, str], desired: Mapping[str, str],
                      ) -> tuple[dict[str, str], bool]:
        """Merge ``desired`` into ``current`` (nothing removed) and record the diff; returns (merged, changed)."""
        merged = dict(current)
        changed = False
        for name in sorted(desired):
            new, old = desired[name], current.get(name)
            if old is None:
                action = "add"
            elif old != new:
                action = "change"
            else:
                action = "unchanged"
            changed |= action != "unchanged"
            merged[name] = new
            self.plan.settings.append(SettingChange(target, name, action, old, new))
        for name in sorted(set(current) - set(desired)):
            self.plan.settings.append(SettingChange(target, name, "kept", current[name], current[name]))
        return merged, changed
