"""What-if replay of a small synthetic feed through the shipped config and rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.config import LoadedConfig, load_config
from daemon.rules.load import load_rules
from daemon.whatif import FeedError, format_report, read_feed, replay
from tests.engine.helpers import T0

ROOT = Path(__file__).resolve().parents[2]
PM = "sensors/demo-001/hall/pm25"
LUX = "sensors/demo-001/hall/lux"
FAN = "fresh_air.fan_speed"


@pytest.fixture(scope="module")
def loaded() -> LoadedConfig:
    return load_config(ROOT / "config" / "lobbyd.yaml")


def pm25(offset: int) -> float | None:
    """PM2.5 in the hall at T0 + offset (a Wednesday, 10:00, open): clean, dirty, silent, moderate."""
    if offset < 600:
        return 10
    if offset < 1200:
        return 40
    if offset < 1500:
        return None  # the sensor goes quiet: stale after 120 s
    return 30


def write_feed(path: Path) -> None:
    lines = []
    for off in range(0, 2100, 10):
        value = pm25(off)
        if value is not None:
            lines.append({"ts": T0 + off, "topic": PM, "payload": f"{value}", "retain": False})
        lines.append({"ts": T0 + off, "topic": LUX, "payload": json.dumps({"lux": 1000}), "retain": False})
    lines.append({"ts": T0 + 5, "topic": LUX, "payload": "not json", "retain": False})
    lines.append({"ts": T0 + 5, "topic": "sensors/elsewhere", "payload": "1", "retain": False})
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")


def test_replay_counts_writes_time_in_value_and_fallbacks(loaded: LoadedConfig, tmp_path: Path) -> None:
    feed = tmp_path / "feed.jsonl"
    write_feed(feed)
    rules = load_rules(loaded.rules_dir, loaded.rule_context())
    assert rules.ok, rules.errors
    report = replay(loaded, rules.ruleset, feed)
    assert report.evaluations == 2091
    assert report.readings == 210 + 180  # lux every 10 s, PM2.5 except during the 300 s gap
    assert dict(report.rejected) == {"not_json": 1, "unknown_topic": 1}
    fan = report.points[FAN]
    # 1 while open and clean; 3 once the median of the last nine readings is over 35 (the fifth reading
    # of 40, at 640 s). The feed has no outdoor PM2.5, so pm25-unknown-outdoor-bad (high when the hall's
    # PM2.5 is unknown and the outdoor air not known clean) asks for its safe value 3 all along, and
    # keeps 3 while the hall's sensor is silent. It comes back at 30 after 300 s, longer than its
    # stale_after_s: the median starts afresh (the 40s from before the gap count no more), and 30 is
    # below every threshold (pm25-elevated's latch, too, was reset by the gap). pm25-high keeps 3 for
    # its release_after of 5 minutes, counted from the last time it acted (1310 s, before the sensor
    # went stale), so until 1610 s; then low.
    assert [(t - T0, v) for t, v in fan.values] == [(0, 1), (640, 3), (1610, 1)]
    assert fan.writes == 3
    assert fan.time_in_value == {1: 1120, 3: 970}
    assert (fan.fallbacks, fan.fallback_s) == (1, 860)
    # The lamps: hall-daylight is lux minus the lamps' own light, known once the brightness is written
    # (a 10 s fallback to 100 % at the start); 1000 lx − 4.5 × 80 % = 640 lx of daylight: 80 %, and the
    # colour follows the 15-minute average of that daylight, first written at 130 s.
    cct = report.points["lights.cct"]
    assert [(t - T0, v) for t, v in cct.values] == [(130, 4050)]
    assert report.points["lights.brightness"].time_in_value == {100: 300, 80: 1670}
    text = format_report(report)
    assert "fresh_air.fan_speed: 3 write(s)" in text
    assert "    at 3: 16 min (46%)" in text
    assert "    fallbacks (inputs unknown → safe value): 1, 14 min in all" in text
    assert "1 rejected" not in text and "2 rejected (not_json 1, unknown_topic 1)" in text


def test_min_hold_holds_back_fast_changes(loaded: LoadedConfig, tmp_path: Path) -> None:
    feed = tmp_path / "fast.csv"
    rows = ["ts,topic,payload"]
    for off in range(0, 301, 10):  # 10, then 34 from 60 s, then 40 from 180 s
        rows.append(f"{T0 + off},{PM},{10 if off < 60 else 34 if off < 180 else 40}")
    feed.write_text("\n".join(rows) + "\n", encoding="utf-8")
    rules = load_rules(loaded.rules_dir, loaded.rule_context())
    report = replay(loaded, rules.ruleset, feed, step_s=5)
    fan = report.points[FAN]
    # 2 is wanted from 100 s (the median of nine turns 34), 3 from 220 s: each waits for the 120 s hold
    assert [(t - T0, v) for t, v in fan.values] == [(0, 1), (120, 2), (240, 3)]
    assert fan.held["minimum hold time"] > 0


def test_feed_errors_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"ts": 1, "topic": "a", "payload": "1"}\n{"topic": "a"}\n', encoding="utf-8")
    with pytest.raises(FeedError, match=r"bad.jsonl:2: bad line"):
        read_feed(bad)
    csvf = tmp_path / "x.csv"
    csvf.write_text("time,topic,payload\n", encoding="utf-8")
    with pytest.raises(FeedError, match=r"x.csv:1: a CSV feed starts with the header ts,topic,payload"):
        read_feed(csvf)


SHIPPED_FEED = ROOT / "simulators" / "feeds" / "pollution-day.jsonl.gz"


def test_the_shipped_day_is_small_current_and_replays_from_a_fresh_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lobbyd check --replay simulators/feeds/pollution-day.jsonl.gz` works with nothing else set up,
    the config coming from LOBBYD_CONFIG; the shipped file is what its builder writes today."""
    from daemon.cli import main
    from simulators.feeds.build_day import main as build

    assert SHIPPED_FEED.stat().st_size < 200_000
    assert build([str(tmp_path / "again.jsonl.gz")]) == 0
    assert (tmp_path / "again.jsonl.gz").read_bytes() == SHIPPED_FEED.read_bytes(), "rebuild the feed"
    capsys.readouterr()
    monkeypatch.setenv("LOBBYD_CONFIG", str(ROOT / "config" / "lobbyd.yaml"))
    assert main(["check", "--replay", str(SHIPPED_FEED)]) == 0
    out, err = capsys.readouterr()
    assert f"lobbyd: config {ROOT / 'config' / 'lobbyd.yaml'} (from LOBBYD_CONFIG)" in err
    assert "what-if on pollution-day.jsonl.gz: 2026-06-03 00:00:00 → 2026-06-03 23:59:06 (24.0 h)" in out
    assert "5735 messages, 7175 readings, 0 rejected" in out
    # the first (0, closed at midnight), a pre-purge at 08:00, and 6 more while open
    assert "fresh_air.fan_speed: 8 write(s)" in out
    # hall PM2.5 silent, or stuck (no move of 0.5 µg/m³ in 30 minutes)
    assert "fallbacks (inputs unknown → safe value): 4, 68 min in all" in out

    assert main(["check", "--config", str(ROOT / "config" / "lobbyd.yaml")]) == 0  # an option beats the variable
    assert "(from --config)" in capsys.readouterr().err
    monkeypatch.delenv("LOBBYD_CONFIG")
    main(["check"])  # whatever /etc/lobbyd/lobbyd.yaml holds on this machine, if anything
    assert "lobbyd: config /etc/lobbyd/lobbyd.yaml (from the default)" in capsys.readouterr().err


def test_a_compressed_feed_reads_like_the_plain_one(tmp_path: Path) -> None:
    import gzip

    plain = tmp_path / "feed.jsonl"
    write_feed(plain)
    packed = tmp_path / "feed.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert read_feed(packed) == read_feed(plain)
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(plain.read_bytes())  # named .gz, not compressed
    with pytest.raises(FeedError, match=r"broken\.jsonl\.gz: cannot read"):
        read_feed(broken)


OUT = "sensors/demo-001/outdoor/pm25"


def _falling_feed(path: Path, outdoor: float) -> None:
    """The hall at 45 for 15 minutes, then falling 1 µg/m³ a minute to 15; the outdoor air steady."""
    rows = ["ts,topic,payload"]
    for off in range(0, 3600, 30):
        hall = 45.0 if off < 900 else max(15.0, 45.0 - (off - 900) / 60)
        rows.append(f"{T0 + off},{PM},{hall:g}")
        if off % 60 == 0:
            rows.append(f"{T0 + off},{OUT},{outdoor:g}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def test_a_clear_fall_steps_the_fan_straight_down_unless_the_outdoor_air_is_bad(
    loaded: LoadedConfig, tmp_path: Path
) -> None:
    """pm25-clearing reads hall-pm25-trend, the trend the config derives from the hall's median."""
    rules = load_rules(loaded.rules_dir, loaded.rule_context())
    assert rules.ok, rules.errors
    clean, bad = tmp_path / "clean.csv", tmp_path / "bad.csv"
    _falling_feed(clean, outdoor=20)
    _falling_feed(bad, outdoor=100)
    fan = replay(loaded, rules.ruleset, clean).points[FAN]
    # high from the first reading; the median of nine is below 34 at 1710 s (four readings behind the
    # raw value), while the 15-minute trend says more than 0.5 a minute down: straight to low, no medium
    assert [(t - T0, v) for t, v in fan.values] == [(0, 3), (1710, 1)]
    # outdoor air at 100 may be what raised the hall: the step-down delays hold, high for 5 minutes
    # after below 34, then medium for 5 minutes after below 29
    fan = replay(loaded, rules.ruleset, bad).points[FAN]
    assert [(t - T0, v) for t, v in fan.values] == [(0, 3), (2009, 2), (2309, 1)]
