"""Input filters and stuck detection: bounded, within the inputs' range, correct on irregular spacing."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.inputs import Conditioning, EmaFilter, MedianFilter, SensorInputs, StuckDetector
from daemon.model import Quantity, Reading
from drivers.mqtt.inputs_config import FilterConfig, StuckConfig

finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)
samples = st.lists(st.tuples(finite, st.floats(min_value=0.0, max_value=1e5)), min_size=1, max_size=60)


@given(samples, st.integers(min_value=1, max_value=9))
def test_median_stays_within_the_window_and_holds_n_values(xs: list[tuple[float, float]], n: int) -> None:
    f = MedianFilter(n)
    seen: list[float] = []
    for v, dt in xs:
        out = f.update(v, dt)
        seen.append(v)
        window = seen[-n:]
        assert min(window) <= out <= max(window)
        assert len(f) <= n


@given(samples, st.floats(min_value=0.1, max_value=1e4))
def test_ema_stays_within_the_inputs(xs: list[tuple[float, float]], tau: float) -> None:
    f = EmaFilter(tau)
    t = 0.0
    for v, dt in xs:
        t += dt
        out = f.update(v, t)
        assert math.isfinite(out)
        assert min(v for v, _ in xs) <= out <= max(v for v, _ in xs)


def test_median_ignores_a_spike() -> None:
    f = MedianFilter(5)
    outs = [f.update(v, i) for i, v in enumerate([10, 11, 10, 400, 11, 10])]
    assert max(outs) <= 11


def test_ema_weighs_by_time_not_by_count() -> None:
    """Ten readings 1 s apart move an EMA as far as one reading 10 s later (irregular spacing)."""
    a, b = EmaFilter(30.0), EmaFilter(30.0)
    a.update(0.0, 0.0)
    b.update(0.0, 0.0)
    for i in range(1, 11):
        out_a = a.update(100.0, float(i))
    out_b = b.update(100.0, 10.0)
    assert out_a == pytest.approx(out_b)
    assert out_b == pytest.approx(100 * (1 - math.exp(-10 / 30)))


def test_ema_same_time_adds_nothing() -> None:
    f = EmaFilter(10.0)
    f.update(5.0, 100.0)
    assert f.update(500.0, 100.0) == 5.0
    assert f.update(500.0, 99.0) == 5.0


def test_stuck_after_the_time_and_recovers_on_a_move() -> None:
    d = StuckDetector(after_s=1800, min_change=0.5)
    changes = [d.update(v, t) for t, v in [(0, 12.0), (600, 12.2), (1200, 11.8), (1799, 12.4)]]
    assert not any(changes) and not d.stuck
    assert d.update(12.1, 1800) and d.stuck
    assert not d.update(12.1, 2400) and d.stuck  # reported once
    assert d.update(13.0, 2500) and not d.stuck
    assert not d.update(13.1, 2600)


def test_slow_drift_that_adds_up_is_not_stuck() -> None:
    d = StuckDetector(after_s=100, min_change=0.5)
    for i in range(100):
        d.update(10 + 0.3 * i, 30.0 * i)
        assert not d.stuck


def _r(sensor: str, v: float, ts: float) -> Reading:
    return Reading(sensor, Quantity.PM25, v, ts, "hall")


def test_conditioning_filters_and_passes_others_through() -> None:
    c = Conditioning(
        [
            SensorInputs("pm", FilterConfig(median_of=3), None),
            SensorInputs("plain", None, None),
            SensorInputs("st", None, StuckConfig(after_s=10, min_change=1)),
        ]
    )
    assert "pm" in c and "st" in c and "plain" not in c
    outs = [c.apply(_r("pm", v, i)).reading.value for i, v in enumerate([10.0, 90.0, 12.0, 11.0])]
    assert outs == [10.0, 50.0, 12.0, 12.0]
    assert c.apply(_r("st", 5.0, 0)).stuck_changed is False
    got = c.apply(_r("st", 5.2, 10))
    assert got.stuck_changed and got.filtered is None and got.reading.value == 5.2


@pytest.mark.parametrize(
    "data",
    [{}, {"median_of": 3, "ema_s": 10}, {"median_of": 1}, {"median_of": 1000}, {"ema_s": 0}, {"ema_s": -5}],
)
def test_bad_filter_configs_are_refused(data: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        FilterConfig.model_validate(data)


@pytest.mark.parametrize("data", [{"after_s": 0, "min_change": 1}, {"after_s": 10, "min_change": -1}, {}])
def test_bad_stuck_configs_are_refused(data: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        StuckConfig.model_validate(data)


def test_median_starts_afresh_after_a_gap_longer_than_the_sensors_stale_time() -> None:
    f = MedianFilter(9, max_gap_s=120)
    for i in range(9):
        f.update(40.0, 10.0 * i)
    assert f.update(30.0, 80 + 120) == 40.0  # a gap of 120 s: not longer than stale, the 40s still count
    assert f.update(30.0, 200 + 121) == 30.0  # 121 s: the sensor was unknown; the old readings are gone
    assert len(f) == 1
    plain = MedianFilter(9)
    for i in range(9):
        plain.update(40.0, 10.0 * i)
    assert plain.update(30.0, 10_000) == 40.0  # without a bound: no notion of time
    with pytest.raises(ValueError, match="max_gap_s"):
        MedianFilter(3, max_gap_s=0)


def test_conditioning_gives_a_median_the_sensors_stale_time() -> None:
    c = Conditioning([SensorInputs("pm", FilterConfig(median_of=3), None, 60.0)])
    assert [c.apply(_r("pm", v, t)).reading.value for t, v in [(0, 40.0), (10, 40.0), (20, 40.0)]] == [40.0] * 3
    assert c.apply(_r("pm", 30.0, 81)).reading.value == 30.0
