"""What survives a restart, in the state directory: engine timers and safety-gate history.

Both files are written atomically (write, fsync, rename), so a crash leaves the old or the new version,
never half of one. An unreadable file is logged and replaced by fresh state, never fatal.

Times in the files are wall-clock times. A file whose times lie after the wall clock at load (the clock
was set back across a restart: an RTC reset, an NTP step) is moved back as a whole so that its latest
time is now, logged once: a hold or a ``for:`` keeps what it had left, never waits for the clock to
catch up.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from daemon.engine import EngineMemory
from daemon.safety import SafetyGate
from drivers.clock import Clock, SteadyClock
from drivers.writefault import WriteFault

__all__ = ["StateStore", "load_engine_memory", "load_safety_gate", "save_state"]

_LOG = logging.getLogger("lobbyd")
ENGINE_FILE = "engine-memory.json"
GATE_FILE = "safety-gate.json"
MAX_AHEAD_S = 10 * 365 * 86_400.0  # a state file further ahead of the clock than this is corrupt, not early


def load_engine_memory(state_dir: Path, now: float | None = None) -> EngineMemory:
    """``for:`` start times, hysteresis latches, ramp positions and overrides of the last run, knowing
    no input after the file was saved (the time the daemon was down counts as a gap in every input).
    With ``now``, a file from the future is moved back (see the module docstring)."""
    try:
        data = _read(state_dir / ENGINE_FILE)
        memory = EngineMemory.from_json(data)
        saved = float(data["saved_at"]) if "saved_at" in data else None
        if now is not None:
            ahead = max(memory.latest(), -math.inf if saved is None else saved) - now
            if ahead > 0:
                _clock_set_back(state_dir / ENGINE_FILE, ahead)
                memory = memory.shifted(-ahead)
                saved = None if saved is None else saved - ahead
        return memory.seen_until(saved) if saved is not None else memory
    except FileNotFoundError:
        return EngineMemory()
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        _LOG.warning("engine memory unreadable, starting with fresh timers: %s", exc)
        return EngineMemory()


def load_safety_gate(state_dir: Path, now: float | None = None, *, saved_at: float | None = None) -> SafetyGate:
    """Minimum hold times and hourly write counts survive a restart; what each device holds does not
    (it is read again at start), so every known value is forgotten here. With ``now``, a file from the
    future is moved back (see the module docstring) by as much as the engine's, saved ``saved_at``."""
    try:
        gate = SafetyGate.from_json(_read(state_dir / GATE_FILE))
        latest = max(gate.latest(), -math.inf if saved_at is None else saved_at)
        ahead = -math.inf if now is None else latest - now
        if ahead > 0:
            _clock_set_back(state_dir / GATE_FILE, ahead)
            gate = gate.shifted(-ahead)
    except FileNotFoundError:
        return SafetyGate()
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        _LOG.warning("safety gate state unreadable, starting afresh: %s", exc)
        return SafetyGate()
    for target in gate.points:
        gate.observed(target, None)
    return gate


def _saved_at(state_dir: Path) -> float | None:
    """When the engine file was saved (both files are saved together), if it says so."""
    try:
        return float(_read(state_dir / ENGINE_FILE)["saved_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _read(path: Path) -> Any:
    """A state file's JSON, numbers as floats; one that is not finite (NaN, Infinity, 1e999) makes it unreadable."""

    def finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{path}: {text[:24]} is not a finite number")
        return value

    return json.loads(path.read_text(), parse_float=finite, parse_int=finite, parse_constant=finite)


def _clock_set_back(path: Path, ahead: float) -> None:
    if ahead > MAX_AHEAD_S:
        raise ValueError(f"{path}: times {ahead:.0f}s after the clock's time now are not a clock set back")
    if ahead < 1.0:  # the wall clock's drift from the steady line between saves, not a step
        return
    _LOG.warning(
        "%s: its latest time is %.0fs after the clock's time now (the clock was set back?); "
        "its times are moved back by that much, so holds and timers keep what they had left",
        path,
        ahead,
    )


def save_state(
    state_dir: Path,
    memory: EngineMemory,
    gate: SafetyGate,
    *,
    last: dict[str, bytes] | None = None,
    clock_slack_s: float = 0.0,
    saved_at: float | None = None,
) -> None:
    """Persist engine timers and safety-gate history atomically.

    With ``last`` (the caller's record of what it wrote before), a file whose content has not changed
    is not rewritten: no write and no fsync every few seconds on a gateway's SD card for nothing. With
    ``clock_slack_s`` too, neither is an engine file in which only the two clocks that readings and
    evaluations move on have moved, each by less than that: until when each input is known and when
    each output was last set. The file then lags by less than ``clock_slack_s``; a timer, latch, output
    value or override that changes is written at once. ``saved_at`` (the clock's time) is written with
    the engine file: what it says is known only up to then.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    for name, data in ((ENGINE_FILE, memory.to_json()), (GATE_FILE, gate.to_json())):
        body = json.dumps(data).encode()
        old = last.get(name) if last is not None else None
        if old == body:
            continue
        if (
            name == ENGINE_FILE
            and old is not None
            and clock_slack_s > 0
            and _only_clocks_moved(json.loads(old), data, clock_slack_s)
        ):
            continue
        path = state_dir / name
        tmp = path.with_suffix(".tmp")
        written = body
        if name == ENGINE_FILE and saved_at is not None:
            written = json.dumps({**data, "saved_at": saved_at}).encode()
        try:
            with tmp.open("wb") as f:
                f.write(written)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)  # a half-written file would only take more of a full disk
            exc.filename = str(path)  # the file that could not be saved, for the message
            raise
        if last is not None:
            last[name] = body


def _only_clocks_moved(old: Mapping[str, Any], new: Mapping[str, Any], slack: float) -> bool:
    """Whether engine memory ``new`` differs from ``old`` (both as JSON) only in ``known_until`` and in the
    time of each output and of each rule's last action (``release_after``), each moved forward by less
    than ``slack``."""
    timed = ("outputs", "acted")
    if old.keys() != new.keys() or any(old[k] != new[k] for k in old if k not in ("known_until", *timed)):
        return False
    known_old, known_new = old.get("known_until", {}), new.get("known_until", {})
    if known_old.keys() != known_new.keys() or not all(0 <= known_new[k] - known_old[k] < slack for k in known_new):
        return False
    for key in timed:
        a, b = old.get(key, {}), new.get(key, {})
        if a.keys() != b.keys() or not all(b[k][0] == a[k][0] and 0 <= b[k][1] - a[k][1] < slack for k in b):
            return False
    return True


class StateStore:
    """The daemon's state directory: loads at start, saves what changed (see :func:`save_state`)."""

    def __init__(self, state_dir: Path, *, clock_slack_s: float, clock: Clock) -> None:
        self.state_dir = state_dir
        self._slack = clock_slack_s
        self._clock = clock  # times in memory and gate are on its line
        self._wall = clock.wall if isinstance(clock, SteadyClock) else clock.now
        self._written: dict[str, bytes] = {}  # what was last written, per file (unchanged: not rewritten)
        self.fault = WriteFault(f"state to {state_dir}", _LOG)  # a full or read-only disk: degraded, not fatal

    def load(self) -> tuple[EngineMemory, SafetyGate]:
        now, saved = self._wall(), _saved_at(self.state_dir)
        return load_engine_memory(self.state_dir, now), load_safety_gate(self.state_dir, now, saved_at=saved)

    def save(self, memory: EngineMemory, gate: SafetyGate, *, exact: bool = False) -> None:
        """Persist; unless ``exact`` (shutdown), the clocks every evaluation moves may lag by the slack.

        A write that fails (disk full, read-only, I/O error) is reported in :attr:`fault` and tried again
        at the next save: the daemon goes on controlling with its state in memory."""
        slack = 0.0 if exact else self._slack
        now = self._wall()
        # The daemon's steady time line → the wall clock, in whole seconds: the two drift apart by
        # microseconds between saves, and an unchanged file must stay byte for byte the same.
        skew = float(round(now - self._clock.now()))
        if skew != 0:
            memory, gate = memory.shifted(skew), gate.shifted(skew)
        try:
            save_state(self.state_dir, memory, gate, last=self._written, clock_slack_s=slack, saved_at=now)
        except OSError as exc:
            self.fault.failed(exc, self.state_dir)
        else:
            self.fault.ok()
