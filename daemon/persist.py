"""What survives a restart, in the state directory: engine timers and safety-gate history.

Both files are written atomically (write, fsync, rename), so a crash leaves the old or the new version,
never half of one. An unreadable file is logged and replaced by fresh state, never fatal.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from daemon.actuation import SafetyGate
from daemon.engine import EngineMemory

__all__ = ["load_engine_memory", "load_safety_gate", "save_state"]

_LOG = logging.getLogger("lobbyd")
ENGINE_FILE = "engine-memory.json"
GATE_FILE = "safety-gate.json"


def load_engine_memory(state_dir: Path) -> EngineMemory:
    """``for:`` start times, hysteresis latches, ramp positions and overrides of the last run."""
    try:
        return EngineMemory.from_json(json.loads((state_dir / ENGINE_FILE).read_text()))
    except FileNotFoundError:
        return EngineMemory()
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        _LOG.warning("engine memory unreadable, starting with fresh timers: %s", exc)
        return EngineMemory()


def load_safety_gate(state_dir: Path) -> SafetyGate:
    """Minimum hold times and hourly write counts survive a restart; what each device holds does not
    (it is read again at start), so every known value is forgotten here."""
    try:
        gate = SafetyGate.from_json(json.loads((state_dir / GATE_FILE).read_text()))
    except FileNotFoundError:
        return SafetyGate()
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        _LOG.warning("safety gate state unreadable, starting afresh: %s", exc)
        return SafetyGate()
    for target in gate.points:
        gate.observed(target, None)
    return gate


def save_state(
    state_dir: Path, memory: EngineMemory, gate: SafetyGate, *, last: dict[str, bytes] | None = None
) -> None:
    """Persist engine timers and safety-gate history atomically.

    With ``last`` (the caller's record of what it wrote before), a file whose content has not changed
    is not rewritten: no write and no fsync every few seconds on a gateway's SD card for nothing.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    for name, data in ((ENGINE_FILE, memory.to_json()), (GATE_FILE, gate.to_json())):
        body = json.dumps(data).encode()
        if last is not None and last.get(name) == body:
            continue
        path = state_dir / name
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        if last is not None:
            last[name] = body
