"""Hypothesis properties of the engine (issue 3): range, chatter, order independence, staleness."""

from __future__ import annotations

import itertools
import random
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from daemon.config import SafetyConfig
from daemon.engine import EngineMemory, Override, SensorView, evaluate
from daemon.rules.load import RuleContext, load_rules
from daemon.safety import SafetyGate
from tests.engine.helpers import LIMITS, PM25_HIGH, SENSORS, SITE, T0, Runner, reading, ruleset

FAN = "fresh_air.fan_level"
values = st.floats(min_value=-1e5, max_value=1e5, allow_nan=False)
lux = st.floats(min_value=0, max_value=200_000, allow_nan=False)


@st.composite
def actions(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["value", "curve", "steps", "circadian"]))
    if kind == "value":
        return draw(values)
    if kind == "circadian":
        lo = draw(st.floats(min_value=0, max_value=9000))
        return {
            "circadian": {
                "min_k": lo,
                "max_k": lo + draw(st.floats(min_value=1, max_value=9000)),
                "daylight": "hall-lux",
            }
        }
    xs = sorted(draw(st.sets(st.integers(0, 5000), min_size=2, max_size=5)))
    rows = [[x, draw(values)] for x in xs]
    return {kind: {"input": "hall-lux", ("points" if kind == "curve" else "table"): rows}}


@settings(max_examples=150, deadline=None)
@given(
    target=st.sampled_from(sorted(LIMITS)),
    action=actions(),
    light=lux,
    hours=st.floats(min_value=0, max_value=48),
    override=st.none() | values,
    ramp=st.none() | st.floats(min_value=1, max_value=1000),
)
def test_outputs_always_inside_the_profile_range(  # noqa: PLR0917
    target: str, action: Any, light: float, hours: float, override: float | None, ramp: float | None
) -> None:
    run = Runner(ruleset({"id": "r", "target": target, "set": action, "ramp_per_minute": ramp}))
    now = T0 + hours * 3600
    if override is not None:
        run.memory.overrides[target] = Override(override, now + 60)
    for t in (now, now + 30):
        d = run.step(t, hall_lux=light).decisions[target]
        assert LIMITS[target].clamp(d.value) == d.value


@settings(max_examples=100, deadline=None)
@given(series=st.lists(st.tuples(st.integers(1, 60), st.floats(0, 80, allow_nan=False)), min_size=1, max_size=150))
def test_hysteresis_and_min_hold_never_chatter(series: list[tuple[int, float]]) -> None:
    elevated = {**PM25_HIGH, "id": "pm25-elevated", "priority": 40, "set": 2}
    elevated["when"] = [{**PM25_HIGH["when"][0], "above": 25, "off_below": 15}]
    run = Runner(ruleset(PM25_HIGH, elevated, {"id": "base", "target": FAN, "set": 1}))
    gate, cfg = SafetyGate(), SafetyConfig(min_hold_s=120)
    t, on, changes = T0, False, []
    for dt_s, pm in series:
        t += dt_s
        ev = run.step(t, hall_pm25=pm)
        high = next(x for x in ev.traces if x.rule == "pm25-high").state == "active"
        # The latch: on above 35, off below 25, unchanged in between.
        assert high == (pm > 35 or (on and pm >= 25))
        on = high
        d = ev.decisions[FAN]
        adm = gate.admit(FAN, d.value, t, cfg)
        if adm.write:
            gate.wrote(FAN, d.value, t, ok=True)
            changes.append(t)
    assert all(b - a >= 120 for a, b in itertools.pairwise(changes))


def _rule(i: int, prio: int, conds: int, value: int) -> dict[str, Any]:
    return {
        "id": f"r{i:02d}",
        "target": FAN,
        "priority": prio,
        "when": [{"time": {"after": "00:00"}}] * conds,
        "set": value,
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 3)), min_size=1, max_size=8),
    seed=st.integers(0, 2**32),
    nfiles=st.integers(1, 4),
)
def test_arbitration_independent_of_file_and_rule_order(
    specs: list[tuple[int, int, int]], seed: int, nfiles: int
) -> None:
    rules = [_rule(i, p, c, v) for i, (p, c, v) in enumerate(specs)]
    expected = Runner(ruleset(*rules)).step(T0).decisions[FAN]
    shuffled = rules[:]
    random.Random(seed).shuffle(shuffled)
    yaml = YAML()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for k in range(nfiles):
            with (d / f"{random.Random(seed + k).randint(0, 999):03d}-{k}.yaml").open("w") as f:
                yaml.dump({"rules": shuffled[k::nfiles]}, f)
        loaded = load_rules(d, RuleContext(SENSORS, LIMITS))
    assert loaded.ok, loaded.errors
    got = Runner(loaded.ruleset).step(T0).decisions[FAN]
    assert (got.value, got.reason.rule, got.reason.text) == (expected.value, expected.reason.rule, expected.reason.text)


sensor_states = st.sampled_from(["fresh", "stale", "retained", "missing"])


@settings(max_examples=150, deadline=None)
@given(
    states=st.fixed_dictionaries({s: sensor_states for s in SENSORS}),
    pm=st.floats(0, 100, allow_nan=False),
    action=st.sampled_from([3, {"curve": {"input": "hall-lux", "points": [[0, 0], [1000, 3]]}}]),
    zone=st.booleans(),
    safe=st.none() | st.integers(0, 3),
)
def test_stale_inputs_never_produce_a_non_fallback_action(
    states: dict[str, str], pm: float, action: Any, zone: bool, safe: int | None
) -> None:
    cond: dict[str, Any] = {"zone": "hall", "quantity": "pm25", "aggregate": "max"} if zone else {"sensor": "hall-pm25"}
    cond["above"] = {"sensor": "outdoor-pm25"} if pm > 50 else pm
    rules = ruleset({"id": "r", "target": FAN, "when": [cond], "set": action, "safe_value": safe})
    readings = {}
    for sid, state in states.items():
        if state != "missing":
            age = 10 if state == "fresh" else SENSORS[sid].stale_after_s + 1
            readings[sid] = reading(sid, 40, T0 - age, retained=state == "retained")
    view = SensorView(SENSORS, readings)
    ev = evaluate(rules, view, T0, EngineMemory(), site=SITE, limits=LIMITS)
    unknown = [i.key for i in rules.rules[0].inputs() if view.value(i, T0)[0] is None]
    trace = ev.traces[0]
    if unknown:
        assert trace.state in ("fallback", "silent", "inactive")  # inactive: a known condition is false
        if FAN in ev.decisions:
            assert ev.decisions[FAN].reason.fallback and ev.decisions[FAN].value == safe
    else:
        assert trace.state in ("active", "inactive")


CCT_CURVE = [[0, 2700], [100, 3000], [500, 4000], [1500, 5000]]


@settings(max_examples=150, deadline=None)
@given(
    readings=st.lists(st.floats(min_value=0, max_value=3000, allow_nan=False), min_size=1, max_size=40),
    held=st.sampled_from([(150.0, 0.0), (150.0, 100.0), (200.0, 190.0), (10.0, 5.0)]),
)
def test_a_held_curve_stays_within_min_change_of_the_curve_and_does_not_flip(
    readings: list[float], held: tuple[float, float]
) -> None:
    """Whatever the readings: the output is never min_change or more from the curve's value (lead or
    not), and the same reading again moves nothing."""
    from daemon.engine.actions import interpolate

    min_change, lead = held
    curve = {"input": "hall-lux", "points": CCT_CURVE, "min_change": min_change, "lead": lead}
    run = Runner(ruleset({"id": "r", "target": "lights.cct", "set": {"curve": curve}}))
    for i, x in enumerate(readings):
        got = run.value(T0 + 120 * i, "lights.cct", hall_lux=x)
        assert got is not None
        assert abs(got - interpolate([(a, b) for a, b in CCT_CURVE], x)) < min_change + 1e-9
        assert run.value(T0 + 120 * i + 60, "lights.cct", hall_lux=x) == got
