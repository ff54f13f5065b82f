"""Messages no rule reads wait in a short batch (``Daemon._on_message``), and nothing is lost or late for it:
when a batch is taken (an old enough batch, its timer, its size cap), that its readings keep their own
arrival times and order, that everything that counts or shows readings takes it first (counters, status,
a reload, shutdown), and that a message a rule reads never waits.

In-process daemon on a virtual clock, no servers, as in tests/test_evaluation_triggers.py.
"""

from __future__ import annotations

from pathlib import Path

from daemon.app import BATCH_MAX, BATCH_S, BATCH_TAKE_AFTER_S
from tests.test_evaluation_triggers import T0, daemon, msg, settled

ANNEX, PM25 = "sensors/demo-001/annex/temp", "sensors/demo-001/hall/pm25"


class _Lines:
    """Stands in for the time-series writer: the lines the recorder submits."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def submit(self, line: str) -> None:
        self.lines.append(line)


def _annex_lines(w: _Lines) -> list[str]:
    return [ln.split(" value=")[1] for ln in w.lines if "sensor=annex-temp" in ln]


async def test_a_reading_no_rule_reads_waits_and_a_later_message_takes_the_batch(tmp_path: Path) -> None:
    async with daemon(tmp_path) as (d, clock):
        w = _Lines()
        d.recorder.writer = w  # type: ignore[assignment]
        assert ANNEX in d._batched_topics and PM25 not in d._batched_topics
        d._on_message(msg(ANNEX, "21.5", clock.now()))
        await settled(d)
        assert (d.state.latest("annex-temp"), d.intake.counters.accepted, w.lines) == (None, 0, [])
        await clock.advance(BATCH_TAKE_AFTER_S / 2)
        d._on_message(msg(ANNEX, "21.6", clock.now()))
        assert d.intake.counters.accepted == 0  # the oldest is not old enough yet
        await clock.advance(BATCH_TAKE_AFTER_S / 2)
        await settled(d)
        evaluations = d.stats.evaluations  # the ticker's, if a tick was due
        d._on_message(msg(ANNEX, "21.7", clock.now()))  # the oldest is BATCH_TAKE_AFTER_S old: all three now
        assert d.intake.counters.accepted == 3
        latest = d.state.latest("annex-temp")
        assert latest is not None and (latest.value, latest.ts) == (21.7, T0 + BATCH_TAKE_AFTER_S)
        ns = [int((T0 + k * BATCH_TAKE_AFTER_S / 2) * 1e9) for k in range(3)]
        assert _annex_lines(w) == [f"{v} {t}" for v, t in zip(("21.5", "21.6", "21.7"), ns, strict=True)]
        await settled(d)
        assert d.stats.evaluations == evaluations  # no rule reads it
        d._on_message(msg(PM25, "12", clock.now()))  # the hall's PM2.5 rules read it: never batched
        assert d.state.latest("hall-pm25") is not None and not d._batch
        await settled(d)
        assert d.stats.evaluations == evaluations + 1


async def test_a_message_a_rule_reads_takes_an_old_enough_batch_first(tmp_path: Path) -> None:
    async with daemon(tmp_path) as (d, clock):
        d._on_message(msg(ANNEX, "21.5", clock.now()))
        await clock.advance(BATCH_TAKE_AFTER_S / 2)
        d._on_message(msg(PM25, "12", clock.now()))
        assert d.state.latest("annex-temp") is None and len(d._batch) == 1  # young: it waits on
        await clock.advance(BATCH_TAKE_AFTER_S / 2)
        d._on_message(msg(PM25, "13", clock.now()))
        assert d.state.latest("annex-temp") is not None and not d._batch


async def test_a_batch_no_message_follows_is_taken_by_its_timer(tmp_path: Path) -> None:
    async with daemon(tmp_path) as (d, clock):
        d._on_message(msg(ANNEX, "21.5", clock.now()))
        await clock.advance(BATCH_S - 0.01)
        assert d.state.latest("annex-temp") is None
        await clock.advance(0.01)
        assert d.state.latest("annex-temp") is not None and d._batch_timer is None
        d._on_message(msg(ANNEX, "21.6", clock.now()))  # a new batch arms a new timer
        await clock.advance(BATCH_S)
        latest = d.state.latest("annex-temp")
        assert latest is not None and latest.value == 21.6


async def test_a_full_batch_is_taken_at_once(tmp_path: Path) -> None:
    async with daemon(tmp_path) as (d, clock):
        for i in range(BATCH_MAX - 1):
            d._on_message(msg(ANNEX, f"{20 + i / 1000}", clock.now()))
        assert d.intake.counters.accepted == 0
        d._on_message(msg(ANNEX, "19", clock.now()))
        assert (d.intake.counters.accepted, len(d._batch)) == (BATCH_MAX, 0)
        latest = d.state.latest("annex-temp")
        assert latest is not None and latest.value == 19


async def test_counters_status_and_shutdown_take_the_batch_first(tmp_path: Path) -> None:
    async with daemon(tmp_path) as (d, clock):
        d._on_message(msg(ANNEX, "21.5", clock.now()))
        d._on_message(msg(ANNEX, "not a number", clock.now()))
        counters = await d.handle_control({"cmd": "counters"})
        assert (counters["accepted"], counters["rejected"]["wrong_type"]) == (1, 1)
        d._on_message(msg(ANNEX, "21.6", clock.now()))
        shown = {s["sensor"]: s for s in d.status()["sensors"]}
        assert shown["annex-temp"]["value"] == 21.6
        d._on_message(msg(ANNEX, "21.7", clock.now()))
        await d._shutdown()  # after intake stopped: the last batched reading goes to the final flush
        latest = d.state.latest("annex-temp")
        assert latest is not None and latest.value == 21.7 and d._batch_timer is None


async def test_a_reload_takes_the_batch_before_a_rule_starts_reading_its_sensor(tmp_path: Path) -> None:
    async with daemon(tmp_path) as (d, clock):
        d._on_message(msg(ANNEX, "21.5", clock.now()))
        await clock.advance(0.1)
        (d.loaded.rules_dir / "annex.yaml").write_text(
            "rules:\n  - id: annex-warm\n    target: fresh_air.fan_speed\n    priority: 10\n"
            "    when:\n      - sensor: annex-temp\n        above: 26\n    set: 2\n"
        )
        assert d.reload_rules("test")["ok"]
        assert ANNEX not in d._batched_topics and not d._batch
        latest = d.state.latest("annex-temp")
        assert latest is not None and latest.value == 21.5
        d._on_message(msg(ANNEX, "21.6", clock.now()))  # read by a rule now: at once, and evaluated
        assert d.state.out_of_order == 0 and "annex-temp" in d._changed


async def test_a_failing_message_in_a_batch_loses_none_of_the_others(tmp_path: Path) -> None:
    async with daemon(tmp_path) as (d, clock):
        take = d._take

        def flaky(m: object) -> None:
            if getattr(m, "payload", b"") == b"21.6":
                raise RuntimeError("a bug")
            take(m)  # type: ignore[arg-type]

        d._take = flaky  # type: ignore[method-assign]
        for v in ("21.5", "21.6", "21.7"):
            d._on_message(msg(ANNEX, v, clock.now()))
        d.take_batch()
        latest = d.state.latest("annex-temp")
        assert latest is not None and latest.value == 21.7
        assert (d.intake.counters.accepted, d.link.handler_errors) == (2, 1)
