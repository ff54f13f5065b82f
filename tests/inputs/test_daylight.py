"""Daylight without lamp light: subtraction, clamping, night calibration, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.inputs import CalibrationStore, DaylightConfig, DaylightEstimator, VirtualSensors
from daemon.model import Quantity, Reading


def _lux(v: float, ts: float, sensor: str = "hall-lux") -> Reading:
    return Reading(sensor, Quantity.ILLUMINANCE, v, ts, "hall")


def _cfg(**kw: object) -> DaylightConfig:
    return DaylightConfig.model_validate({"id": "hall-daylight", "lux_sensor": "hall-lux", **kw})


def test_the_lamps_contribution_is_subtracted_and_clamped_at_zero() -> None:
    e = DaylightEstimator(_cfg(lux_per_percent=4.0))
    got = e.update(_lux(700.0, 0), brightness=80.0, dark=False).reading
    assert got is not None and got.sensor == "hall-daylight" and got.value == pytest.approx(380.0)
    got = e.update(_lux(250.0, 1), brightness=80.0, dark=False).reading
    assert got is not None and got.value == 0.0


def test_the_filter_smooths_daylight_after_the_lamps_are_taken_out() -> None:
    e = DaylightEstimator(_cfg(lux_per_percent=4.0, filter={"median_of": 3}))
    values = []
    # the lamps go from 80 % to 30 % at the third reading: the measured lux falls by 200 lx with them,
    # the daylight (400 lx) does not move; one 900 lx reflection in between moves nothing either
    for i, (lux, bright) in enumerate([(720, 80), (720, 80), (520, 30), (1220, 30), (520, 30)]):
        got = e.update(_lux(lux, i), brightness=bright, dark=False).reading
        assert got is not None
        values.append(got.value)
    assert values == [400, 400, 400, 400, 400]


def test_unknown_without_lamp_level_or_factor() -> None:
    assert DaylightEstimator(_cfg(lux_per_percent=4.0)).update(_lux(5, 0), brightness=None, dark=False).reading is None
    assert DaylightEstimator(_cfg()).update(_lux(5, 0), brightness=50.0, dark=False).reading is None


def test_calibrated_at_night_only_after_the_lamps_settled() -> None:
    e = DaylightEstimator(_cfg(calibration={"settle_s": 300}))
    assert not e.update(_lux(400.0, 0), brightness=100.0, dark=True).calibrated
    assert not e.update(_lux(400.0, 299), brightness=100.0, dark=True).calibrated
    got = e.update(_lux(400.0, 300), brightness=100.0, dark=True)
    assert got.calibrated and e.lux_per_percent == pytest.approx(4.0)
    assert got.reading is not None and got.reading.value == pytest.approx(0.0)
    assert not e.update(_lux(900.0, 400), brightness=100.0, dark=False).calibrated  # daytime
    assert not e.update(_lux(400.0, 500), brightness=50.0, dark=True).calibrated  # lamps just changed
    assert not e.update(_lux(10.0, 5000), brightness=10.0, dark=True).calibrated  # below min_brightness
    assert e.lux_per_percent == pytest.approx(4.0)


def test_a_window_sensor_is_used_directly() -> None:
    e = DaylightEstimator(_cfg(window_sensor="window-lux", lux_per_percent=4.0))
    assert e.source == "window-lux"
    got = e.update(_lux(321.0, 0, "window-lux"), brightness=100.0, dark=False).reading
    assert got is not None and (got.sensor, got.value) == ("hall-daylight", 321.0)


def test_virtual_sensors_save_a_measured_factor_and_reload_it(tmp_path: Path) -> None:
    store = CalibrationStore(tmp_path)
    lamps = {"lights.brightness": 100.0}
    v = VirtualSensors(
        [_cfg(calibration={"settle_s": 10})],
        brightness=lamps.get,
        dark=lambda: True,
        saved=store.load(),
        save=store.save,
    )
    assert v.on_reading(_lux(500.0, 0)) == []  # no factor yet
    out = v.on_reading(_lux(500.0, 10))
    assert [r.value for r in out] == [pytest.approx(0.0)]
    assert store.load() == {"hall-daylight": pytest.approx(5.0)}
    again = VirtualSensors([_cfg()], brightness=lamps.get, dark=lambda: False, saved=store.load())
    lamps["lights.brightness"] = 50.0
    assert [r.value for r in again.on_reading(_lux(600.0, 20))] == [pytest.approx(350.0)]
    assert again.on_reading(Reading("hall-lux", Quantity.ILLUMINANCE, 600.0, 21, "hall", retained=True)) == []
    assert again.on_reading(_lux(1.0, 22, "other")) == []


@pytest.mark.parametrize("text", ["{", "[1]", '{"hall-daylight": "x", "b": -1, "c": NaN}'])
def test_a_damaged_calibration_file_is_ignored(tmp_path: Path, text: str) -> None:
    (tmp_path / "daylight.json").write_text(text)
    assert CalibrationStore(tmp_path).load() == {}


def test_a_daylight_median_starts_afresh_after_its_source_was_stale() -> None:
    v = VirtualSensors(
        [_cfg(lux_per_percent=4.0, filter={"median_of": 5})],
        brightness=lambda _: 0.0,
        dark=lambda: False,
        stale_after_s={"hall-lux": 60.0},
    )
    for t in (0, 10, 20):
        v.on_reading(_lux(900.0, t))
    assert [r.value for r in v.on_reading(_lux(100.0, 80))] == [900.0]  # 60 s: not yet stale, the median holds
    (after,) = v.on_reading(_lux(100.0, 141))  # 61 s of silence: the readings from before count no more
    assert after.value == 100.0
