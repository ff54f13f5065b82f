"""Rule files: validate again and swap atomically, on request, on SIGHUP or when a file changes.

A bad file keeps its last good version (daemon/rules/load.py); what happened is logged, recorded as
an event, published on ``lobbyd/<branch>/rules/status`` and kept for ``lobbyd status``. Files are
parsed in a child process, each within ``rule_files.parse_timeout_s`` (daemon/rules/worker.py), so
the event loop keeps answering while a large file is read; a file that takes longer is stopped and
refused like a bad one.
"""

from __future__ import annotations

import asyncio
import logging
from multiprocessing import ProcessError
from pathlib import Path
from typing import Any

from daemon.config import LoadedConfig
from daemon.control import ControlLoop
from daemon.publish import Publisher
from daemon.rules.load import LoadedRules, ParsedFile, load_rules, rule_files, save_last_good
from daemon.telemetry import Recorder
from daemon.yamlsource import ConfigError
from drivers.clock import Clock

__all__ = ["RuleReload", "config_changes", "load_rules_of", "read_rules", "rule_changes", "safety_changes"]

_LOG = logging.getLogger("lobbyd")
LAST_GOOD_DIR = "rules-last-good"  # in the state directory


def load_rules_of(
    loaded: LoadedConfig,
    previous: LoadedRules | None = None,
    read: dict[str, ParsedFile | ConfigError] | None = None,
) -> LoadedRules:
    """Read and validate the rules directory of ``loaded`` (last good versions from the state directory)."""
    return load_rules(
        loaded.rules_dir,
        loaded.rule_context(),
        previous=previous,
        last_good_dir=loaded.state_dir / LAST_GOOD_DIR,
        limits=loaded.config.rule_files,
        read=read,
    )


async def read_rules(loaded: LoadedConfig, previous: LoadedRules | None = None) -> LoadedRules:
    """:func:`load_rules_of` off the event loop: each file parsed in a child process within its time limit."""
    from daemon.rules.worker import read_files

    directory = loaded.rules_dir
    paths = rule_files(directory) if directory.is_dir() else []
    read: dict[str, ParsedFile | ConfigError] | None
    try:
        read = await asyncio.to_thread(read_files, paths, loaded.config.rule_files)
    except (OSError, ProcessError) as exc:  # no child process here (a sandbox): read them in a thread instead
        _LOG.warning("rules: cannot start a process to read rule files (%s); reading them in a thread", exc)
        read = None
    return await asyncio.to_thread(load_rules_of, loaded, previous, read)


def config_changes(running: LoadedConfig, path: Path) -> list[str]:
    """Top-level config sections (and device profiles) that differ on disk from the running ones.

    These need a restart: sensors, MQTT, devices, InfluxDB and paths are wired into live connections.
    Raises :class:`daemon.yamlsource.ConfigError` if the file on disk is invalid now.
    """
    from daemon.config import load_config

    new = load_config(path)
    old_cfg, new_cfg = running.config, new.config
    changed = [name for name in type(old_cfg).model_fields if getattr(old_cfg, name) != getattr(new_cfg, name)]
    old_profiles = running.profiles
    changed += [f"device profile of {n}" for n in sorted(new.profiles) if new.profiles[n] != old_profiles.get(n)]
    return changed


def rule_changes(old: LoadedRules, new: LoadedRules) -> list[str]:
    """One line per rule or schedule added, removed or changed between two rule sets, by id."""
    lines: list[str] = []
    for kind, before, after in (
        ("rule", {r.id: r for r in old.ruleset.rules}, {r.id: r for r in new.ruleset.rules}),
        ("schedule", dict(old.ruleset.schedules), dict(new.ruleset.schedules)),
    ):
        for key in sorted(before.keys() | after.keys()):
            a, b = before.get(key), after.get(key)
            what = "added" if a is None else "removed" if b is None else "changed" if a != b else None
            if what is not None:
                target = getattr(b if b is not None else a, "target", None)
                lines.append(f"{kind} {what}: {key}" + (f" ({target})" if target else ""))
    return lines


def safety_changes(running: LoadedConfig, new: LoadedConfig) -> list[str]:
    """One line per device point whose safety limits differ in ``new``, e.g.
    ``safety limits of fresh_air.fan_speed changed: min_hold_s 300 → 120``."""
    lines: list[str] = []
    for target in sorted(running.point_limits().keys() | new.point_limits().keys()):
        a, b = running.safety_for(target).model_dump(), new.safety_for(target).model_dump()
        diff = [f"{k} {a[k]:g} → {b[k]:g}" for k in a if a[k] != b[k]]
        if diff:
            lines.append(f"safety limits of {target} changed: {', '.join(diff)}")
    return lines


class _UntilStopped:
    """The watch thread's stop condition: the daemon stopping, or the watching task cancelled.

    watchfiles polls ``is_set()`` from its thread every step. awatch calls ``set()`` when its task is
    cancelled; that must end the thread but not stop the daemon, hence a flag of its own. The task check
    covers an anyio that shields the thread call, so that the cancellation reaches awatch only after the
    thread returned: without it, the thread would wait for a file change that may never come.
    """

    def __init__(self, stop: asyncio.Event, task: asyncio.Task[Any]) -> None:
        self._stop, self._task, self._set = stop, task, False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set or self._stop.is_set() or self._task.cancelling() > 0


class RuleReload:
    """Reloads the rules into the control loop and says what happened."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        control: ControlLoop,
        publisher: Publisher,
        recorder: Recorder,
        clock: Clock,
    ) -> None:
        self._loaded = loaded
        self._control = control
        self._publisher = publisher
        self._recorder = recorder
        self._clock = clock
        self.reloads = 0
        self.last_reload = "initial load"
        self._one_at_a_time = asyncio.Lock()

    async def reload(self, why: str) -> dict[str, Any]:
        """Validate the rule files again (off the event loop) and swap; a bad file keeps its last good version."""
        async with self._one_at_a_time:
            return self._swap(why, await read_rules(self._loaded, self._control.rules))

    def _swap(self, why: str, new: LoadedRules) -> dict[str, Any]:
        old = self._control.rules
        now = self._clock.now()
        self.reloads += 1
        errors = [str(e) for e in new.errors]
        self._control.set_rules(new)
        if new.last_good_error != old.last_good_error:  # logged once per episode, not per reload
            _LOG.warning(
                "rules: last good copies %s",
                f"not saved: {new.last_good_error}" if new.last_good_error else "saved again",
            )
        if errors:
            kept = ", ".join(Path(f).name for f in new.kept_previous) or "nothing"
            text = f"rules reload ({why}): {len(errors)} error(s); kept last good version of {kept}"
            _LOG.error("%s", text)
            for err in errors:
                _LOG.error("rules: %s", err)
            self._recorder.event("reload", text + ": " + "; ".join(errors[:5]), now)
        else:
            unchanged = "" if new.fingerprint() != old.fingerprint() else " (unchanged)"
            text = f"rules reload ({why}): ok, {len(new.ruleset.rules)} rules{unchanged}"
            _LOG.info(text)
            self._recorder.event("reload", text, now)
        changes = rule_changes(old, new)
        for line in changes:
            _LOG.info("rules: %s", line)
        self._publisher.rules_status(errors, now)
        self.last_reload = text
        lines = [text, *(f"rules: {e}" for e in errors), *(f"rules: {c}" for c in changes)]
        return {"ok": not errors, "text": text, "errors": errors, "changes": changes, "lines": lines}

    async def reload_all(self, why: str, config_path: Path) -> dict[str, Any]:
        """Reload the rules and compare the config file on disk with the running one (SIGHUP and
        ``lobbyd reload``). Every line of the answer's ``lines`` is logged as it stands there, so the
        command prints what the log says. The config is not applied: its changes need a restart."""
        from daemon.config import load_config

        answer = await self.reload(why)
        safety: list[str] = []
        try:
            changed = config_changes(self._loaded, config_path)
            safety = safety_changes(self._loaded, load_config(config_path))
            note = (
                "config unchanged"
                if not changed
                else "config changed in " + ", ".join(changed) + ": NOT applied, needs a restart"
            )
        except ConfigError as exc:
            changed = []
            note = f"config file is invalid now, running config kept: {str(exc).splitlines()[0]}"
        level = logging.WARNING if changed or "invalid" in note else logging.INFO
        notes = [f"reload: {note}", *(f"reload: {line}: NOT applied, needs a restart" for line in safety)]
        for line in notes:
            _LOG.log(level, "%s", line)
        self.last_reload = f"{answer['text']}; {note}"
        return {**answer, "text": self.last_reload, "needs_restart": changed, "lines": answer["lines"] + notes}

    def retry_last_good(self) -> None:
        """Copy the rules in force to the state directory again if that failed (a full or read-only disk);
        quiet while it still fails, logged once when it works."""
        rules = self._control.rules
        if rules.last_good_error is None:
            return
        new = save_last_good(rules, self._loaded.state_dir / LAST_GOOD_DIR, self._loaded.rules_dir)
        if new.last_good_error is None:
            _LOG.warning("rules: last good copies saved again after %s", rules.last_good_error)
            self._control.set_rules(new)

    async def watch(self, stop: asyncio.Event) -> None:
        """Reload when a rule file changes on disk (watchfiles), debounced by the library, until ``stop``."""
        from watchfiles import awatch

        task = asyncio.current_task()
        assert task is not None
        # rust_timeout=0: the watch thread returns only on a change or a stop, instead of handing back to
        # the event loop every 5 s for nothing. It checks the stop condition every `step` ms, so it also
        # ends when this task is cancelled.
        until = _UntilStopped(stop, task)
        async for _changes in awatch(
            self._loaded.rules_dir, stop_event=until, debounce=2000, step=1000, rust_timeout=0, recursive=False
        ):
            await self.reload("file changed")
