"""Persisted timers and safety history: atomic files, rewritten only when their content changed."""

from __future__ import annotations

from pathlib import Path

from daemon.actuation import SafetyGate
from daemon.engine import EngineMemory
from daemon.persist import ENGINE_FILE, GATE_FILE, load_engine_memory, save_state


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
