"""``./run.sh demo``'s first part end to end: the real daemon, mosquitto, influxd and device simulators,
narrated. It once died on the first polled status value (a state message with no write in it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.servers
@pytest.mark.waits(70)
@pytest.mark.timeout(300)
def test_the_demo_runs_its_script_and_the_daemon_does_what_it_says() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "simulators.demo", "--scenario", ""],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-4000:]
    assert "Traceback" not in text
    for said in (
        "demo speed-up: hall-pm25 read as the median of 3 readings",  # every shortening said on screen
        "demo speed-up: pm25-high keeps high 5s after the hall falls below 34",
        "decides  fresh_air.fan_speed = 3  (pm25-high:",  # the spike
        "writes   fresh_air.fan_speed = 2  -> device reads back 2.0  [ok]",  # medium as the air improves
        "reads    lights.cct_actual = ",  # a polled status value, narrated
        "decides  lights.brightness = 60",  # the sun: dimmer lamps
        "daemon exited with 0",
    ):
        assert said in text, f"{said!r} not in the demo's output:\n{text[-4000:]}"
