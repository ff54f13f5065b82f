"""The rule language: what facilities staff write in ``rules/*.yaml``.

A file has optional ``schedules:`` and ``rules:``. A rule sets one device point (``target:``) while all
its ``when:`` conditions hold; of several rules on a point the highest ``priority`` wins, then the one
with more conditions, then the id in alphabetical order, never file order. See ``rules/README.md``.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from daemon.model import Quantity
from daemon.rules.durations import Duration, refuse_number_text
from daemon.rules.scalars import Flag, Integer, Number, PositiveNumber
from daemon.rules.schedule import OpensWithin, Schedule, SunTime, SunWindow, TimeWindow
from daemon.rules.schedule import Strict as _Strict

__all__ = [
    "Action",
    "Circadian",
    "Condition",
    "Curve",
    "Input",
    "Rule",
    "RuleFile",
    "Schedule",
    "Steps",
    "SunTime",
]

Aggregate = Literal["mean", "max", "min", "median"]
ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"  # a rule id (also in the JSON Schema)
TARGET_PATTERN = r"^[^.]*\.[^.]*$"  # device.point: exactly one dot
_ID = re.compile(ID_PATTERN)
MIN_CHANGE = "the output moves only when the value computed differs from the last one given by at least this"
LEAD = (
    "with min_change: when the output moves, it goes this far past the value computed, in the direction of"
    " the move, so a steady trend takes fewer, larger steps; less than min_change"
)


def _check_lead(min_change: float, lead: float) -> None:
    """``lead`` must stay below ``min_change``: at or above it, the value led to would at once be
    ``min_change`` away from the value computed, and the output would flip back and forth."""
    if lead <= 0 or lead < min_change:
        return
    if min_change <= 0:
        raise ValueError(
            f"'lead' ({lead:g}) works only with a 'min_change' larger than it; e.g. min_change: {lead * 1.5:g}"
        )
    raise ValueError(
        f"'lead' ({lead:g}) must be less than 'min_change' ({min_change:g}): else the output would flip back and"
        f" forth; e.g. lead: {min_change * 2 / 3:g}"
    )


class Input(_Strict):
    """A value a rule reads: one sensor, or an aggregate of a zone's fresh sensors of one quantity."""

    sensor: str | None = None
    zone: str | None = None
    quantity: Quantity | None = None
    aggregate: Aggregate = "mean"
    times: Number = Field(1.0, gt=0, description="multiply the value, e.g. 10 for 'ten times the hall's PM2.5'")

    @model_validator(mode="after")
    def _one_source(self) -> Input:
        if self.sensor is None and (self.zone is None or self.quantity is None):
            raise ValueError("name a 'sensor', or a 'zone' together with a 'quantity'")
        if self.sensor is not None and self.zone is not None:
            raise ValueError("name either a 'sensor' or a 'zone', not both")
        return self

    @property
    def key(self) -> str:
        base = self.sensor if self.sensor is not None else f"{self.aggregate}({self.zone}.{self.quantity})"
        return base if self.times == 1.0 else f"{self.times:g} × {base}"


def _as_input(value: Any) -> Any:
    refuse_number_text(value)
    if isinstance(value, str):
        return {"sensor": value}
    return value


InputRef = Annotated[Input, BeforeValidator(_as_input)]


def _as_threshold(value: Any) -> Any:  # a number stays one; text names a sensor (one error, not two)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else _as_input(value)


Threshold = Annotated[Number | Input, BeforeValidator(_as_threshold)]


class Condition(_Strict):
    """One thing that must be true for a rule to act. Exactly one kind per list item:

    - a number: ``sensor``/``zone`` with ``above``/``below``/``between`` (plus ``off_below``/``off_above``
      for hysteresis and ``for`` for how long it must hold first);
    - a schedule: ``schedule: opening-hours`` (open) or ``outside_schedule: opening-hours`` (closed);
    - before opening: ``opens_within: {schedule: opening-hours, within: 30min}`` (closed, opens soon);
    - a clock window: ``time: {after: "08:00", before: "18:00", weekdays: [mon, fri]}``;
    - a sun window: ``sun: {after: sunrise+30m, before: sunset}``;
    - a cron pattern: ``cron: "*/15 8-18 * * mon-fri"`` (true during the minutes it matches).
    """

    sensor: str | None = None
    zone: str | None = None
    quantity: Quantity | None = None
    aggregate: Aggregate = "mean"
    above: Threshold | None = None
    below: Threshold | None = None
    between: tuple[Number, Number] | None = None
    off_below: Threshold | None = None
    off_above: Threshold | None = None
    for_: Duration = Field(0.0, alias="for")
    schedule: str | None = None
    outside_schedule: str | None = None
    opens_within: OpensWithin | None = None
    time: TimeWindow | None = None
    sun: SunWindow | None = None
    cron: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Condition:
        numeric = self.sensor is not None or self.zone is not None
        kinds = [
            numeric,
            self.schedule is not None,
            self.outside_schedule is not None,
            self.opens_within is not None,
            self.time is not None,
            self.sun is not None,
            self.cron is not None,
        ]
        if sum(kinds) != 1:
            raise ValueError(
                "each condition needs exactly one of: sensor/zone (a number), schedule, outside_schedule, "
                "opens_within, time, sun, cron"
            )
        if numeric:
            self.input  # noqa: B018 - validates sensor/zone/quantity
            tests = [self.above is not None, self.below is not None, self.between is not None]
            if sum(tests) != 1:
                raise ValueError("a number condition needs exactly one of 'above', 'below' or 'between'")
            if self.between is not None and not self.between[0] < self.between[1]:
                raise ValueError(f"'between' must be [low, high] with low < high, got {list(self.between)}")
            if self.off_below is not None:
                if self.above is None:
                    raise ValueError("'off_below' goes with 'above' (hysteresis)")
                if (
                    isinstance(self.above, float | int)
                    and isinstance(self.off_below, float | int)
                    and not (self.off_below < self.above)
                ):
                    raise ValueError(
                        f"'off_below' ({self.off_below:g}) must be lower than 'above' ({self.above:g}): swapped or "
                        "equal, the rule switches off at once and chatters; e.g. "
                        f"above: {max(self.above, self.off_below):g}, off_below: {min(self.above, self.off_below):g}"
                    )
            if self.off_above is not None:
                if self.below is None:
                    raise ValueError("'off_above' goes with 'below' (hysteresis)")
                if (
                    isinstance(self.below, float | int)
                    and isinstance(self.off_above, float | int)
                    and not (self.off_above > self.below)
                ):
                    raise ValueError(
                        f"'off_above' ({self.off_above:g}) must be higher than 'below' ({self.below:g}): swapped or "
                        "equal, the rule switches off at once and chatters; e.g. "
                        f"below: {min(self.below, self.off_above):g}, off_above: {max(self.below, self.off_above):g}"
                    )
        else:
            for name in ("above", "below", "between", "off_below", "off_above"):
                if getattr(self, name) is not None:
                    raise ValueError(f"'{name}' only goes with a sensor or zone condition")
            if self.for_:
                raise ValueError("'for' only goes with a sensor or zone condition")
        if self.cron is not None:
            from daemon.rules.cron import cron_trigger

            try:
                cron_trigger(self.cron)
            except ValueError as exc:
                raise ValueError(f"cron '{self.cron}': {exc}") from None
        return self

    @functools.cached_property
    def input(self) -> Input:
        """The value this condition reads (built once: the engine asks on every evaluation)."""
        return Input(sensor=self.sensor, zone=self.zone, quantity=self.quantity, aggregate=self.aggregate)

    @functools.cached_property
    def threshold_input(self) -> Input | None:
        """The input an ``above``/``below`` threshold reads, if it is one (built once, as :attr:`input`)."""
        t = self.above if self.above is not None else self.below
        return t if isinstance(t, Input) else None

    @functools.cached_property
    def off_input(self) -> Input | None:
        """The input an ``off_below``/``off_above`` reads, if it is one."""
        t = self.off_below if self.off_below is not None else self.off_above
        return t if isinstance(t, Input) else None

    @functools.cached_property
    def threshold_inputs(self) -> tuple[Input, ...]:
        """Every input a threshold of this condition reads (``above``/``below``, ``off_below``/``off_above``)."""
        return tuple(i for i in (self.threshold_input, self.off_input) if i is not None)

    @functools.cached_property
    def threshold_value(self) -> float | None:
        """A fixed ``above``/``below`` threshold, if it is one."""
        t = self.above if self.above is not None else self.below
        return None if t is None or isinstance(t, Input) else float(t)

    @property
    def is_numeric(self) -> bool:
        return self.sensor is not None or self.zone is not None


class Curve(_Strict):
    """Piecewise-linear map of an input, e.g. daylight lux → colour temperature."""

    input: InputRef
    points: tuple[tuple[Number, Number], ...] = Field(min_length=2)
    min_change: Number = Field(0.0, ge=0, description=MIN_CHANGE)
    lead: Number = Field(0.0, ge=0, description=LEAD)

    @functools.cached_property
    def output_range(self) -> tuple[float, float]:
        """The lowest and highest value the curve gives (a lead goes no further)."""
        ys = [p[1] for p in self.points]
        return min(ys), max(ys)

    @model_validator(mode="after")
    def _sorted(self) -> Curve:
        xs = [p[0] for p in self.points]
        if any(b <= a for a, b in itertools.pairwise(xs)):
            raise ValueError("curve points must be in increasing order of their first number")
        _check_lead(self.min_change, self.lead)
        return self


class Steps(_Strict):
    """Step table: the value of the last step whose ``from`` the input has reached; with ``hysteresis`` the
    row changes only once the input has passed a boundary by that margin (up or down)."""

    input: InputRef
    table: tuple[tuple[Number, Number], ...] = Field(min_length=1)
    hysteresis: Number = Field(0.0, ge=0, description="margin past a row's boundary before the row changes")

    @model_validator(mode="after")
    def _sorted(self) -> Steps:
        xs = [p[0] for p in self.table]
        if any(b <= a for a, b in itertools.pairwise(xs)):
            raise ValueError("step table rows must be in increasing order of their first number")
        gap = min((b - a for a, b in itertools.pairwise(xs)), default=math.inf)
        if not self.hysteresis < gap / 2:
            raise ValueError(
                f"'hysteresis' ({self.hysteresis:g}) must be less than half the smallest gap between two rows "
                f"({gap:g}): else a row could be skipped or never left; e.g. hysteresis: {gap / 4:g}"
            )
        return self


class Circadian(_Strict):
    """Colour temperature from the sun's position, corrected by measured daylight.

    ``min_k`` at and after sunset, ``max_k`` at solar noon (Adaptive Lighting's parabola); with
    ``daylight`` the measured lux pulls the result: ``daylight_weight`` 0 ignores it, 1 follows only it.
    """

    min_k: Number = 2700
    max_k: Number = 5000
    daylight: InputRef | None = None
    full_daylight_lux: Number = Field(2000, gt=0)
    daylight_weight: Number = Field(0.5, ge=0, le=1)
    min_change: Number = Field(0.0, ge=0, description=MIN_CHANGE)
    lead: Number = Field(0.0, ge=0, description=LEAD)

    @model_validator(mode="after")
    def _range(self) -> Circadian:
        if not self.min_k < self.max_k:
            raise ValueError("'min_k' must be lower than 'max_k'")
        _check_lead(self.min_change, self.lead)
        return self


class Action(_Strict):
    """What value a rule asks for: a constant, a curve, a step table or the circadian formula."""

    value: Number | None = None
    curve: Curve | None = None
    steps: Steps | None = None
    circadian: Circadian | None = None

    @model_validator(mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {"value": value}
        if isinstance(value, str | bool):
            raise ValueError(
                f"'set' needs a number, not the word {str(value).lower()!r}: write the value the device takes "
                "(e.g. set: 0 for off, set: 3 for high on fresh_air.fan_speed), or a curve:, steps: or circadian: block"
            )
        return value

    @model_validator(mode="after")
    def _one(self) -> Action:
        if sum(x is not None for x in (self.value, self.curve, self.steps, self.circadian)) != 1:
            raise ValueError("'set' needs a number, or exactly one of 'curve', 'steps', 'circadian'")
        return self

    def inputs(self) -> list[Input]:
        if self.curve is not None:
            return [self.curve.input]
        if self.steps is not None:
            return [self.steps.input]
        if self.circadian is not None and self.circadian.daylight is not None:
            return [self.circadian.daylight]
        return []


class Rule(_Strict):
    id: str
    description: str = ""
    target: str
    priority: Integer = 0
    when: tuple[Condition, ...] = ()
    set: Action
    safe_value: Number | None = None
    ramp_per_minute: PositiveNumber | None = None
    release_after: Duration = Field(
        0.0, description="when the conditions stop holding, keep the value this long (at most 24 h)"
    )
    enabled: Flag = True

    @model_validator(mode="after")
    def _shape(self) -> Rule:
        if not _ID.fullmatch(self.id):
            good = re.sub(r"[^a-z0-9_.-]+", "-", self.id.lower()).strip("-_.") or "pm25-high"
            raise ValueError(
                f"rule id '{self.id}' may use only lower-case letters, digits, '-', '_' and '.', e.g. '{good}'"
            )
        if self.release_after > 86400:
            raise ValueError(
                f"'release_after' is {self.release_after / 3600:g} h; at most 24 h is allowed (a rule kept longer "
                "after its conditions end would hide them), e.g. release_after: 10min"
            )
        if self.target.count(".") != 1:
            raise ValueError(f"target '{self.target}' must be written as device.point, e.g. fresh_air.fan_speed")
        return self

    @property
    def device(self) -> str:
        return self.target.split(".", 1)[0]

    @property
    def point(self) -> str:
        return self.target.split(".", 1)[1]

    def inputs(self) -> list[Input]:
        found = [c.input for c in self.when if c.is_numeric]
        for c in self.when:
            found.extend(c.threshold_inputs)
        return found + self.set.inputs()

    @property
    def specificity(self) -> int:
        return len(self.when)


class RuleFile(_Strict):
    """One file under ``rules/``."""

    schedules: dict[str, Schedule] = Field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
