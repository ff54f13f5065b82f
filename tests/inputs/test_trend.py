"""Trend virtual sensors: the slope per minute of what the rules see, bounded, unknown until it means something."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.inputs import Derived, Trend, TrendConfig, Trends
from daemon.inputs.trend import MAX_POINTS
from daemon.model import Quantity, Reading

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
gaps = st.floats(min_value=1.0, max_value=120.0)


def _feed(trend: Trend, points: list[tuple[float, float]]) -> list[float | None]:
    return [trend.update(v, t) for t, v in points]


def test_a_steady_fall_reads_as_its_rate_per_minute_on_irregular_spacing() -> None:
    tr = Trend(600.0)
    times = [0, 7, 30, 31, 75, 140, 200, 260, 333, 400]
    outs = _feed(tr, [(t, 50.0 - 0.8 * t / 60.0) for t in times])
    assert outs[-1] == pytest.approx(-0.8)


def test_unknown_until_the_readings_span_half_the_window() -> None:
    tr = Trend(600.0)
    outs = _feed(tr, [(t, 10.0 + t) for t in range(0, 330, 30)])
    assert all(o is None for o in outs[:10])  # 0..270 s: less than 300 s spanned
    assert outs[10] is not None  # 300 s


def test_readings_older_than_the_window_leave_it() -> None:
    """A fall, then 10 minutes flat: the fall is no longer in a 10-minute trend."""
    tr = Trend(600.0)
    _feed(tr, [(t, 100.0 - t / 10.0) for t in range(0, 600, 30)])
    outs = _feed(tr, [(t, 40.0) for t in range(600, 1230, 30)])
    assert outs[-1] == pytest.approx(0.0)


def test_memory_is_bounded_and_the_slope_still_right_when_readings_flood() -> None:
    tr = Trend(600.0)
    for i in range(20_000):  # ten readings a second for over half an hour
        out = tr.update(2.0 * i / 10 / 60, i / 10)
        assert len(tr) <= MAX_POINTS + 1
    assert out is None or out == pytest.approx(2.0)
    assert tr.update(2.0 * 2005.0 / 60, 2005.0) == pytest.approx(2.0, rel=1e-6)


def test_a_gap_longer_than_the_source_goes_stale_starts_afresh() -> None:
    tr = Trend(600.0, max_gap_s=120.0)
    _feed(tr, [(t, 30.0 - t / 60.0) for t in range(0, 600, 30)])
    assert tr.update(5.0, 600.0 + 121.0) is None  # the readings from before the gap are gone
    assert len(tr) == 1


def test_a_reading_at_or_before_the_last_one_is_skipped() -> None:
    tr = Trend(600.0)
    _feed(tr, [(t, float(t)) for t in range(0, 600, 30)])
    n = len(tr)
    assert tr.update(1e6, 570.0) is None and tr.update(1e6, 0.0) is None
    assert len(tr) == n


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan])
def test_a_window_or_gap_that_is_not_positive_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        Trend(bad)
    with pytest.raises(ValueError, match="must be > 0"):
        Trend(600.0, max_gap_s=bad)


@given(st.lists(st.tuples(gaps, finite), min_size=1, max_size=80), finite)
def test_the_slope_is_finite_and_moves_with_the_values_not_their_level(
    pts: list[tuple[float, float]], shift: float
) -> None:
    a, b, c = Trend(300.0), Trend(300.0), Trend(300.0)
    t = 0.0
    for dt, v in pts:
        t += dt
        x, y, z = a.update(v, t), b.update(v + shift, t), c.update(-v, t)
        assert (x is None) == (y is None) == (z is None)
        if x is not None and y is not None and z is not None:
            assert math.isfinite(x)
            scale = max(1.0, abs(shift), *(abs(v) for _, v in pts))
            assert y == pytest.approx(x, abs=1e-6 * scale)  # adding a constant changes no slope
            assert z == pytest.approx(-x, abs=1e-6 * scale)  # a rise mirrored is the same fall


def _r(sensor: str, value: float, ts: float, *, retained: bool = False) -> Reading:
    return Reading(sensor, Quantity.PM25, value, ts, "hall", retained)


def test_trends_follow_their_source_only_and_not_a_retained_value() -> None:
    trends = Trends([TrendConfig(id="pm-trend", sensor="pm", over_s=60)])
    outs = [trends.on_reading(_r("pm", 40.0 - t / 10, t)) for t in range(0, 70, 10)]
    [got] = outs[-1]
    assert (got.sensor, got.quantity, got.ts, got.zone) == ("pm-trend", Quantity.TREND, 60, "trends")
    assert got.value == pytest.approx(-6.0)
    assert trends.on_reading(_r("other", 1.0, 70)) == []
    assert trends.on_reading(_r("pm", 0.0, 80, retained=True)) == []


def test_derived_skips_a_stuck_source_and_keeps_what_the_state_refused_out() -> None:
    """A stuck value's trend would say "steady" (it is left out, to go stale); a derived reading the
    sensor state does not take is not passed on."""
    d = Derived(trends=Trends([TrendConfig(id="pm-trend", sensor="pm", over_s=60)]))
    taken: list[Reading] = []

    def accept(r: Reading) -> bool:
        taken.append(r)
        return r.ts != 60

    outs = [d.follow(_r("pm", 40.0 - t / 10, t), accept=accept) for t in range(0, 80, 10)]
    assert [len(o) for o in outs] == [0, 0, 0, 1, 1, 1, 0, 1]  # at 60 s the state refused it
    assert d.follow(_r("pm", 1.0, 90), accept=accept, stuck={"pm"}) == []
    assert [r.ts for r in taken] == [30, 40, 50, 60, 70]


def test_values_that_overflow_the_sums_give_no_trend_rather_than_inf_or_nan() -> None:
    tr = Trend(60.0)
    outs = _feed(tr, [(t, (1.0 if t % 20 else -1.0) * 1.7e308) for t in range(0, 70, 10)])
    assert outs[-1] is None and all(o is None or math.isfinite(o) for o in outs)
