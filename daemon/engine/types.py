"""The engine's value types: what it knows of sensors and outputs, what it remembers, what it returns."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from daemon.model import Decision, Quantity

__all__ = ["EngineMemory", "Evaluation", "Override", "PointLimits", "RuleTrace", "SensorInfo", "TraceState"]

TraceState = Literal["active", "inactive", "fallback", "silent", "disabled"]


@dataclass(frozen=True, slots=True)
class SensorInfo:
    id: str
    zone: str
    quantity: Quantity
    stale_after_s: float
    #: how much longer than ``stale_after_s`` after a start its first value may take: a trend needs
    #: half its window of readings (0 for a measured sensor)
    warmup_s: float = 0.0


@dataclass(frozen=True, slots=True)
class PointLimits:
    """Allowed output of one device point: its range from the device profile, how fast it may move (the
    config's ``safety:`` ramp) from the config."""

    min: float | None = None
    max: float | None = None
    allowed: tuple[float, ...] | None = None
    ramp_per_minute: float | None = None

    def clamp(self, value: float) -> float:
        """Into ``min..max``, then to the nearest allowed value (ties go down) — as the profile does."""
        if self.min is not None:
            value = max(self.min, value)
        if self.max is not None:
            value = min(self.max, value)
        if self.allowed:
            value = min(self.allowed, key=lambda a: (abs(a - value), a))
        return value

    def describe(self) -> str:
        """The range in words, e.g. ``one of [0, 1, 2, 3]`` or ``2700..5000``."""
        if self.allowed:
            return "one of [" + ", ".join(f"{a:g}" for a in self.allowed) + "]"
        lo = "-inf" if self.min is None else f"{self.min:g}"
        hi = "inf" if self.max is None else f"{self.max:g}"
        return f"{lo}..{hi}"


@dataclass(frozen=True, slots=True)
class Override:
    value: float
    until: float
    source: str = "mqtt"


@dataclass
class EngineMemory:
    """What the engine remembers between evaluations; JSON-serialisable for the state directory.

    Per numeric condition (keyed by :func:`daemon.engine.ruleset.condition_key`): its hysteresis latch,
    when it last became true (``for:``), and until when its inputs were known — the moment the
    readings it last saw go stale, so it depends on the readings alone, not on when evaluations ran (a
    gap longer than ``resume_grace_s`` resets the other two). Per point: the last output and when it
    was set; on a ramped point, when its current minute of ramping began and from which value (a ramp
    moves at most its rate away from where the minute began). Per rule whose action holds something
    (``held``): a step table with ``hysteresis``
    the ``from`` of its row, a curve or circadian with ``min_change`` the value it last gave. And the
    manual overrides in force. Per rule with ``release_after``: its value and when it last acted.
    """

    latched: dict[str, bool] = field(default_factory=dict)
    since: dict[str, float] = field(default_factory=dict)
    known_until: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, tuple[float, float]] = field(default_factory=dict)
    overrides: dict[str, Override] = field(default_factory=dict)
    held: dict[str, float] = field(default_factory=dict)
    acted: dict[str, tuple[float, float]] = field(default_factory=dict)
    ramp_from: dict[str, float] = field(default_factory=dict)

    def copy(self) -> EngineMemory:
        return EngineMemory(
            dict(self.latched),
            dict(self.since),
            dict(self.known_until),
            dict(self.outputs),
            dict(self.overrides),
            dict(self.held),
            dict(self.acted),
            dict(self.ramp_from),
        )

    def seen_until(self, t: float) -> EngineMemory:
        """A copy that knows no input after ``t``: the memory of a daemon that stopped looking then (loaded
        after a restart, so that the time it was down counts as a gap in every input)."""
        out = self.copy()
        out.known_until = {k: min(v, t) for k, v in self.known_until.items()}
        return out

    def shifted(self, seconds: float) -> EngineMemory:
        """A copy with every time in it moved by ``seconds`` (from one clock's line to another's)."""
        if seconds == 0:
            return self.copy()
        return EngineMemory(
            dict(self.latched),
            {k: v + seconds for k, v in self.since.items()},
            {k: v + seconds for k, v in self.known_until.items()},
            {k: (v, t + seconds) for k, (v, t) in self.outputs.items()},
            {k: Override(o.value, o.until + seconds, o.source) for k, o in self.overrides.items()},
            dict(self.held),
            {k: (v, t + seconds) for k, (v, t) in self.acted.items()},
            dict(self.ramp_from),
        )

    def latest(self) -> float:
        """The latest time at which it records something starting: a ``for:`` or an output (-inf: none)."""
        times = [*self.since.values(), *(t for _, t in self.outputs.values()), *(t for _, t in self.acted.values())]
        return max(times, default=-math.inf)

    def with_override(self, target: str, override: Override | None) -> EngineMemory:
        """A copy with ``override`` in force on ``target`` (``None``: cleared)."""
        out = self.copy()
        if override is None:
            out.overrides.pop(target, None)
        else:
            out.overrides[target] = override
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "latched": self.latched,
            "since": self.since,
            "known_until": self.known_until,
            "outputs": {k: list(v) for k, v in self.outputs.items()},
            "overrides": {k: [o.value, o.until, o.source] for k, o in self.overrides.items()},
            "held": self.held,
            "acted": {k: list(v) for k, v in self.acted.items()},
            "ramp_from": self.ramp_from,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EngineMemory:
        return cls(
            latched={str(k): bool(v) for k, v in data.get("latched", {}).items()},
            since={str(k): float(v) for k, v in data.get("since", {}).items()},
            # "known_at" (before issue 16): when an evaluation last saw the input, a safe "known until"
            known_until={str(k): float(v) for k, v in data.get("known_until", data.get("known_at", {})).items()},
            outputs={str(k): (float(v[0]), float(v[1])) for k, v in data.get("outputs", {}).items()},
            overrides={
                str(k): Override(float(v[0]), float(v[1]), str(v[2])) for k, v in data.get("overrides", {}).items()
            },
            held={str(k): float(v) for k, v in data.get("held", {}).items()},
            acted={str(k): (float(v[0]), float(v[1])) for k, v in data.get("acted", {}).items()},
            ramp_from={str(k): float(v) for k, v in data.get("ramp_from", {}).items()},
        )


class RuleTrace(NamedTuple):
    """How one rule came out in one evaluation (for ``lobbyd why`` and the what-if replay)."""

    rule: str
    target: str
    state: TraceState
    value: float | None
    lines: tuple[str, ...]
    inputs: tuple[tuple[str, float | None, float | None], ...]
    priority: int = 0
    specificity: int = 0


@dataclass(frozen=True)
class Evaluation:
    """The outcome of one :func:`daemon.engine.evaluate`: decisions, a trace per rule, the new memory.

    ``next_due`` is the earliest time at which this outcome can change with no new reading: a reading
    going stale, a ``for:`` completing, a clock window opening or closing, a ramp step, an override
    ending, the sun moving a circadian colour. ``at`` means "at the next tick"; ``inf`` means "only a
    reading can".
    """

    decisions: Mapping[str, Decision]
    traces: tuple[RuleTrace, ...]
    memory: EngineMemory
    at: float
    next_due: float = math.inf
    # When a condition's value may change with no reading of its own inputs (a zone member or an input
    # going stale, a for: completing): from then on :func:`daemon.engine.advance` steps every condition.
    stale_at: float = math.inf
