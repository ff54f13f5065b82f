"""Persisted timers and safety history: atomic files, rewritten only when their content changed."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from daemon.engine import EngineMemory
from daemon.persist import ENGINE_FILE, GATE_FILE, load_engine_memory, save_state
from daemon.safety import SafetyGate


def test_an_unchanged_state_is_not_rewritten_a_changed_one_is(tmp_path: Path) -> None:
    memory, gate = EngineMemory(), SafetyGate()
    last: dict[str, bytes] = {}
    memory.since["r#0:abc"] = 100.0
    save_state(tmp_path, memory, gate, last=last)
    inodes = {n: (tmp_path / n).stat().st_ino for n in (ENGINE_FILE, GATE_FILE)}
    save_state(tmp_path, memory, gate, last=last)  # nothing changed: no write (the rename would new an inode)
    assert {n: (tmp_path / n).stat().st_ino for n in inodes} == inodes
    memory.since["r#0:abc"] = 160.0
    save_state(tmp_path, memory, gate, last=last)
    assert (tmp_path / ENGINE_FILE).stat().st_ino != inodes[ENGINE_FILE]
    assert (tmp_path / GATE_FILE).stat().st_ino == inodes[GATE_FILE]
    assert load_engine_memory(tmp_path).since == {"r#0:abc": 160.0}


def test_clocks_that_only_move_on_are_rewritten_once_they_lag_by_the_slack(tmp_path: Path) -> None:
    memory, gate = EngineMemory(), SafetyGate()
    last: dict[str, bytes] = {}

    def save() -> int:
        save_state(tmp_path, memory, gate, last=last, clock_slack_s=60.0)
        return (tmp_path / ENGINE_FILE).stat().st_ino

    memory.known_until["r#0:abc"] = 100.0
    memory.outputs["fresh_air.fan_speed"] = (2.0, 100.0)
    first = save()
    memory.known_until["r#0:abc"] = 159.0
    memory.outputs["fresh_air.fan_speed"] = (2.0, 159.0)
    assert save() == first  # only the two clocks moved, by less than the slack
    assert load_engine_memory(tmp_path).known_until == {"r#0:abc": 100.0}
    memory.known_until["r#0:abc"] = 160.0
    second = save()  # 60 s behind: written
    assert second != first and load_engine_memory(tmp_path).known_until == {"r#0:abc": 160.0}
    memory.outputs["fresh_air.fan_speed"] = (3.0, 161.0)  # an output value: at once
    third = save()
    assert third != second and load_engine_memory(tmp_path).outputs["fresh_air.fan_speed"] == (3.0, 161.0)
    memory.since["r#0:abc"] = 161.0  # a `for` timer: at once
    fourth = save()
    assert fourth != third
    memory.known_until["r#1:def"] = 161.0  # a new input clock: at once
    fifth = save()
    assert fifth != fourth
    memory.known_until["r#0:abc"] = 150.0  # a clock set back: at once
    assert save() != fifth
    assert load_engine_memory(tmp_path).known_until == {"r#0:abc": 150.0, "r#1:def": 161.0}
    memory.known_until["r#0:abc"] = 151.0
    exact = (tmp_path / ENGINE_FILE).stat().st_ino
    save_state(tmp_path, memory, gate, last=last)  # no slack: every move is written
    assert (tmp_path / ENGINE_FILE).stat().st_ino != exact


def _file(state_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((state_dir / ENGINE_FILE).read_text())
    return data


async def test_the_daemon_lets_clocks_lag_between_saves_and_saves_them_exactly_at_shutdown(tmp_path: Path) -> None:
    from tests.test_evaluation_triggers import daemon, msg, settled

    pm25 = "sensors/demo-001/hall/pm25"
    async with daemon(tmp_path) as (d, clock):
        p = d.parts
        state_dir = p.loaded.state_dir
        p.intake.on_message(msg(pm25, "12", clock.now()))
        await settled(d)
        p.store.save(p.control.memory, p.actuation.gate)
        saved = _file(state_dir)["known_until"]
        assert saved and saved == p.control.memory.known_until
        await clock.advance(10.0)
        p.intake.on_message(msg(pm25, "13", clock.now()))
        await settled(d)
        p.store.save(p.control.memory, p.actuation.gate)  # only the clocks moved, by 10 s (slack: resume_grace_s/2)
        assert _file(state_dir)["known_until"] == saved != p.control.memory.known_until
        async with contextlib.AsyncExitStack() as stack:
            for bus in p.buses.values():  # no device listens: the shutdown states fail fast
                await stack.enter_async_context(bus)
            await d.shutdown()
        assert _file(state_dir)["known_until"] == p.control.memory.known_until
        assert _file(state_dir)["saved_at"] == clock.now()


def test_a_restart_knows_no_input_after_the_memory_was_saved(tmp_path: Path) -> None:
    """The time the daemon was down counts as a gap: what it loads knows its inputs only until the save."""
    memory = EngineMemory(latched={"r#0:abc": True}, known_until={"r#0:abc": 1120.0, "r#1:def": 990.0})
    save_state(tmp_path, memory, SafetyGate(), saved_at=1000.0)
    loaded = load_engine_memory(tmp_path)
    assert loaded.known_until == {"r#0:abc": 1000.0, "r#1:def": 990.0}
    assert loaded.latched == {"r#0:abc": True}
    legacy = {"latched": {"r#0:abc": True}, "known_at": {"r#0:abc": 900.0}}  # a file from before issue 16
    (tmp_path / ENGINE_FILE).write_text(json.dumps(legacy))
    assert load_engine_memory(tmp_path).known_until == {"r#0:abc": 900.0}
