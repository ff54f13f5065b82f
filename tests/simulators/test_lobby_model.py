"""The zone model against hand-computed cases."""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import pytest

from simulators.lobby_model import (
    Inputs,
    Outdoor,
    ZoneParams,
    ZoneState,
    daylight_lux,
    fan_power_w,
    lag,
    pm25_step,
    relative_humidity,
    step,
    sun_elevation,
    vapour_density,
)

CLEAN = Outdoor(pm25=0.0, temperature_c=25.0, humidity_rh=50.0, cloud_cover=0.0)


def _inputs(outdoor: Outdoor = CLEAN, *, airflow: float = 0.0, people: float = 0.0) -> Inputs:
    return Inputs(outdoor, people, airflow, 0.0, hvac_on=False, sun_elevation_deg=-30.0)


def test_pm25_decays_exponentially_at_the_total_air_change_rate() -> None:
    # 600 m³, 1200 m³/h fresh air (2 /h) + 0.3 infiltration + 0.2 deposition = 2.5 /h, clean outdoor air.
    p = ZoneParams(volume_m3=600, infiltration_ach=0.3, deposition_per_h=0.2)
    c = pm25_step(100.0, p, _inputs(airflow=1200), 3600 * math.log(2) / 2.5)  # one half-life
    assert c == pytest.approx(50.0, rel=1e-9)
    assert pm25_step(100.0, p, _inputs(airflow=1200), 3600.0) == pytest.approx(100 * math.exp(-2.5), rel=1e-9)


def test_pm25_step_size_does_not_change_the_curve() -> None:
    p = ZoneParams()
    inp = _inputs(Outdoor(150, 25, 50, 0), airflow=1000, people=30)
    one = pm25_step(10.0, p, inp, 3600)
    many = 10.0
    for _ in range(360):
        many = pm25_step(many, p, inp, 10)
    assert many == pytest.approx(one, rel=1e-9)


def test_pm25_steady_state_by_hand() -> None:
    # gain = (0.3·0.8 + (1000/630)·0.1)·150 + 30·100/630; k = 0.3 + 0.2 + 1000/630
    p = ZoneParams()
    lam = 1000 / 630
    expected = ((0.24 + lam * 0.1) * 150 + 3000 / 630) / (0.5 + lam)
    c = pm25_step(0.0, p, _inputs(Outdoor(150, 25, 50, 0), airflow=1000, people=30), 48 * 3600)
    assert c == pytest.approx(expected, rel=1e-9)
    assert round(expected, 2) == 30.94  # (59.81 + 4.76) / 2.087


def test_more_fresh_air_helps_with_a_good_filter_even_when_outdoor_air_is_worse() -> None:
    dirty = Outdoor(150, 25, 50, 0)
    low = pm25_step(30.0, ZoneParams(), _inputs(dirty, airflow=500, people=30), 48 * 3600)
    high = pm25_step(30.0, ZoneParams(), _inputs(dirty, airflow=1600, people=30), 48 * 3600)
    assert high < low
    poor = ZoneParams(filter_efficiency=0.2)
    assert pm25_step(30.0, poor, _inputs(dirty, airflow=1600), 48 * 3600) > pm25_step(
        30.0, poor, _inputs(dirty, airflow=500), 48 * 3600
    )


def test_sun_elevation_at_a_known_place_and_time() -> None:
    # Shanghai (31.23 N, 121.47 E) at the June solstice, local solar noon ≈ 11:55 CST:
    # elevation = 90 − 31.23 + 23.44 = 82.21°.
    t = dt.datetime(2026, 6, 21, 11, 55, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
    assert sun_elevation(31.23, 121.47, t) == pytest.approx(82.2, abs=0.3)
    # Greenwich at the March equinox, 12:07 UTC: 90 − 51.48 + 0 ≈ 38.5°; at midnight far below.
    t = dt.datetime(2026, 3, 20, 12, 7, tzinfo=dt.UTC).timestamp()
    assert sun_elevation(51.48, 0.0, t) == pytest.approx(38.5, abs=0.5)
    assert sun_elevation(51.48, 0.0, t + 12 * 3600) < -30


def test_daylight_with_clouds_and_at_night() -> None:
    assert daylight_lux(-10, 0.0) == 0.0
    clear = daylight_lux(60, 0.0)
    assert 90_000 < clear < 130_000
    assert daylight_lux(60, 1.0) == pytest.approx(clear * 0.25)


def test_humidity_round_trip_and_people_add_moisture_and_heat() -> None:
    assert relative_humidity(24.0, vapour_density(24.0, 55.0)) == pytest.approx(55.0)
    s0 = ZoneState(10.0, 25.0, vapour_density(25.0, 50.0))
    closed = step(s0, ZoneParams(infiltration_ach=0.0), _inputs(people=40), 3600)
    assert closed.temperature_c > 25.0
    assert closed.humidity_rh() > 50.0


def test_lamps_add_their_share_of_light() -> None:
    s0 = ZoneState(10.0, 25.0, 10.0)
    inp = Inputs(CLEAN, 0, 0, 50.0, hvac_on=False, sun_elevation_deg=-30.0)
    assert step(s0, ZoneParams(artificial_lux_at_full=400), inp, 10).lux == pytest.approx(200.0)


def test_a_recirculation_filter_adds_its_clean_air_delivery_rate_to_the_decay() -> None:
    # 630 m³, 630 m³/h at 90 %: +0.9 /h on top of 0.3 infiltration + 0.2 deposition = 1.4 /h.
    off = ZoneParams(volume_m3=630)
    on = ZoneParams(volume_m3=630, recirc_m3h=630, recirc_efficiency=0.9)
    assert pm25_step(100.0, off, _inputs(), 3600.0) == pytest.approx(100 * math.exp(-0.5), rel=1e-9)
    assert pm25_step(100.0, on, _inputs(), 3600.0) == pytest.approx(100 * math.exp(-1.4), rel=1e-9)
    assert ZoneParams().recirc_m3h == 0.0  # off by default


def test_a_lagging_sensor_closes_63_percent_of_a_step_in_one_time_constant() -> None:
    assert lag(0.0, 100.0, 60.0, 60.0) == pytest.approx(100 * (1 - math.exp(-1)), rel=1e-12)
    # Two half steps equal one whole step (exact for a held input).
    assert lag(lag(0.0, 100.0, 60.0, 30.0), 100.0, 60.0, 30.0) == pytest.approx(lag(0.0, 100.0, 60.0, 60.0))
    assert lag(0.0, 100.0, 0.0, 1.0) == 100.0  # no lag: the true value


def test_fan_power_is_cubic_in_airflow_by_default() -> None:
    assert fan_power_w(1600, 1600, 700) == pytest.approx(700)
    assert fan_power_w(800, 1600, 700) == pytest.approx(700 / 8)
    assert fan_power_w(800, 1600, 700, exponent=1) == pytest.approx(350)
    assert fan_power_w(0, 1600, 700) == 0.0


def test_the_lux_sensor_sees_lamps_plus_daylight() -> None:
    p = ZoneParams(window_factor=0.01, artificial_lux_at_full=450)
    inp = Inputs(CLEAN, 0, 0, 50.0, hvac_on=False, sun_elevation_deg=45.0)
    s = step(ZoneState(10, 25, 10), p, inp, 10)
    assert s.lux == pytest.approx(daylight_lux(45.0, 0.0) * 0.01 + 225.0)


def test_model_and_scenario_defaults_agree_on_the_window_factor() -> None:
    from simulators.scenario import ZoneSpec

    assert ZoneSpec().params() == ZoneParams()
    assert ZoneParams().window_factor == 0.01  # docs/simulation.md's table
