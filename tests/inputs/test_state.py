"""The sensor state applies conditioning: rules see the filtered value, a stuck sensor is left out."""

from __future__ import annotations

from daemon.engine import SensorInfo
from daemon.inputs import Conditioning, SensorInputs
from daemon.model import Quantity, Reading
from daemon.rules.model import Input
from daemon.state import SensorState
from drivers.mqtt.inputs_config import FilterConfig, StuckConfig


def _state(calls: list[tuple[str, bool]]) -> SensorState:
    infos = {
        "pm": SensorInfo("pm", "hall", Quantity.PM25, 1e9),
        "pm2": SensorInfo("pm2", "hall", Quantity.PM25, 1e9),
    }
    cond = Conditioning([SensorInputs("pm", FilterConfig(median_of=3), StuckConfig(after_s=100, min_change=1.0))])
    return SensorState(infos, started_at=0.0, conditioning=cond, on_stuck=lambda s, st, r: calls.append((s, st)))


def test_rules_see_the_filtered_value_and_status_both() -> None:
    st = _state([])
    for t, v in enumerate([10.0, 300.0, 12.0]):
        st.update(Reading("pm", Quantity.PM25, v, float(t), "hall"))
    assert st.view().value(Input(sensor="pm"), 3.0).value == 12.0
    assert st.filtered("pm") == 12.0 and st.filtered("pm2") is None
    row = next(s for s in st.summary(3.0) if s.sensor == "pm")
    assert (row.value, row.raw, row.stuck) == (12.0, 12.0, False)


def test_a_stuck_sensor_is_left_out_until_it_moves_and_reported_once_per_change() -> None:
    calls: list[tuple[str, bool]] = []
    st = _state(calls)
    for t in range(0, 160, 10):
        st.update(Reading("pm", Quantity.PM25, 20.0, float(t), "hall"))
    st.update(Reading("pm2", Quantity.PM25, 30.0, 150.0, "hall"))
    assert calls == [("pm", True)]
    assert st.view().value(Input(sensor="pm"), 151.0).value is None
    assert st.view().value(Input(zone="hall", quantity=Quantity.PM25), 151.0).value == 30.0
    assert next(s for s in st.summary(151.0) if s.sensor == "pm").stuck
    for ts in (160.0, 170.0, 180.0):
        st.update(Reading("pm", Quantity.PM25, 25.0, ts, "hall"))
    assert calls == [("pm", True), ("pm", False)]
    assert st.view().value(Input(sensor="pm"), 181.0).value == 25.0


def test_without_conditioning_readings_pass_unchanged() -> None:
    st = SensorState({"pm": SensorInfo("pm", "hall", Quantity.PM25, 1e9)}, started_at=0.0)
    r = Reading("pm", Quantity.PM25, 300.0, 1.0, "hall")
    st.update(r)
    assert st.latest("pm") is r and st.filtered("pm") is None


def test_a_trend_is_not_yet_known_for_its_warm_up_then_stale_like_any_sensor() -> None:
    """A trend needs half its window of readings: for that long after a start (beyond its source's
    stale_after_s) the rules treat it as not yet known, not stale, and status says warming up."""
    infos = {
        "pm": SensorInfo("pm", "hall", Quantity.PM25, 120.0),
        "pm-trend": SensorInfo("pm-trend", "trends", Quantity.TREND, 120.0, warmup_s=450.0),
    }
    st = SensorState(infos, started_at=1000.0)
    trend, pm = Input(sensor="pm-trend"), Input(sensor="pm")
    assert st.view().warming_up(trend, 1500.0) == 1000.0 + 570.0
    assert st.view().warming_up(pm, 1500.0) is None  # a measured sensor: stale after 120 s
    rows = {s.sensor: s for s in st.summary(1500.0)}
    assert rows["pm-trend"].warming_up and not rows["pm-trend"].fresh
    assert not rows["pm"].warming_up
    assert st.view().warming_up(trend, 1570.0) is None
    assert not {s.sensor: s for s in st.summary(1570.0)}["pm-trend"].warming_up  # now it is stale
    st.update(Reading("pm-trend", Quantity.TREND, -0.7, 1200.0, "trends"))
    assert not {s.sensor: s for s in st.summary(1300.0)}["pm-trend"].warming_up  # known: fresh
