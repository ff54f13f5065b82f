"""The engine on two clocks: ``now`` on the daemon's steady line, ``wall`` for schedules and the sun.

Whatever the two differ by (a wall-clock step of up to two days either way), the engine decides exactly
as it would with one clock reading ``wall`` and every time it knows (readings, ``for:`` starts, ramp
positions, overrides) moved by the difference; what is due comes back on the steady line.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.engine import EngineMemory, Evaluation, Override, SensorView, evaluate
from daemon.model import Reading
from tests.engine.helpers import LIMITS, PM25_HIGH, SENSORS, SITE, T0, reading, ruleset

FAN = "fresh_air.fan_level"
RULES = ruleset(
    PM25_HIGH,
    {"id": "open", "target": FAN, "when": [{"schedule": "opening-hours"}], "set": 1},
    {"id": "night", "target": "lights.brightness", "when": [{"time": {"after": "19:00", "before": "07:00"}}],
     "set": 10, "ramp_per_minute": 5},
    {"id": "dirty-out", "target": FAN, "priority": 60,
     "when": [{"sensor": "outdoor-pm25", "above": 100, "for": "10m"}], "set": 0, "safe_value": 1},
    {"id": "sun", "target": "lights.cct", "when": [{"sun": {"after": "sunrise", "before": "sunset"}}],
     "set": {"circadian": {}}, "ramp_per_minute": 100},
)  # fmt: skip


@dataclass(frozen=True)
class Case:
    start_h: float
    pm25: tuple[float, float]  # value, age
    outdoor: tuple[float, float]
    gaps: list[float]
    override_s: float | None


def _run(case: Case, *, shift: float, wall_minus_now: float) -> list[Evaluation]:
    """Evaluate at the case's start (moved by ``shift``) and after each gap, the wall clock
    ``wall_minus_now`` ahead of ``now``."""
    now = T0 + round(case.start_h * 3600) + shift  # whole seconds: moving a time by the skew is exact
    values = {"hall-pm25": case.pm25, "outdoor-pm25": case.outdoor}
    readings: dict[str, Reading] = {s: reading(s, v, now - age) for s, (v, age) in values.items()}
    mem = EngineMemory()
    if case.override_s is not None:
        mem.overrides["lights.cct"] = Override(3000, now + case.override_s)
    out = []
    for gap in [0.0, *case.gaps]:
        now += gap
        ev = evaluate(
            RULES, SensorView(SENSORS, readings), now, mem, site=SITE, limits=LIMITS, wall=now + wall_minus_now
        )
        mem = ev.memory
        out.append(ev)
    return out


def _words(ev: Evaluation) -> dict[str, tuple[float, str, str, bool]]:
    return {t: (d.value, d.reason.rule, d.reason.text, d.reason.fallback) for t, d in ev.decisions.items()}


CASES = st.builds(
    Case,
    start_h=st.floats(0, 24 * 7),
    pm25=st.tuples(st.floats(0, 80), st.floats(0, 300)),
    outdoor=st.tuples(st.floats(0, 200), st.floats(0, 900)),
    gaps=st.lists(st.floats(0.5, 400), max_size=8),
    override_s=st.none() | st.floats(1, 7200),
)


@settings(max_examples=300, deadline=None)
@given(skew=st.integers(-2 * 86_400, 2 * 86_400), case=CASES)
def test_the_engine_on_a_steady_line_decides_as_on_one_wall_clock(skew: int, case: Case) -> None:
    steady = _run(case, shift=0.0, wall_minus_now=skew)  # the wall clock stepped by `skew`
    one = _run(case, shift=skew, wall_minus_now=0.0)  # one clock, everything moved by `skew`
    for a, b in zip(steady, one, strict=True):
        assert _words(a) == _words(b)
        assert a.next_due + skew == b.next_due and a.stale_at + skew == b.stale_at
