"""The rule-file watcher (watchfiles, no periodic timeout) ends on the daemon's stop and on cancellation.

Its thread waits for a change with no timeout (so an idle daemon is not woken every few seconds); it
polls a stop condition every second. Without the cancellation check, a daemon whose other task failed
would hang in shutdown until someone edited a rule file.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from daemon.app import Daemon, build_daemon
from daemon.config import load_config
from drivers.clock import VirtualClock
from tests.e2e.harness import copy_rules, write_config
from tests.test_evaluation_triggers import T0


def _daemon(tmp_path: Path) -> Daemon:
    cfg = write_config(
        tmp_path, mqtt_port=1, device_ports={"fresh_air": 1, "lights": 1}, influx_url=None,
        rules_dir=copy_rules(tmp_path),
    )  # fmt: skip
    return build_daemon(load_config(cfg), clock=VirtualClock(T0))


async def _started(d: Daemon, stop: asyncio.Event) -> asyncio.Task[None]:
    task = asyncio.create_task(d.parts.reload.watch(stop), name="watch-rules")
    await asyncio.sleep(0.05)  # let awatch start its thread (nothing is asserted on this)
    assert not task.done()
    return task


async def test_watcher_ends_when_cancelled_while_the_daemon_is_not_stopping(tmp_path: Path) -> None:
    stop = asyncio.Event()
    task = await _started(_daemon(tmp_path), stop)
    task.cancel()
    async with asyncio.timeout(10):  # the thread looks every second
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert not stop.is_set()


async def test_watcher_ends_on_stop(tmp_path: Path) -> None:
    stop = asyncio.Event()
    task = await _started(_daemon(tmp_path), stop)
    stop.set()
    async with asyncio.timeout(10):
        await task
