"""``lobbyd``: the command line. Exit codes: 0 ok, 1 runtime failure, 2 invalid config/rules/arguments."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from daemon.config import LoadedConfig, load_config
from daemon.logs import setup_logging
from daemon.yamlsource import ConfigError
from drivers.clock import Clock, OffsetClock, SystemClock

__all__ = ["main"]

EXIT_OK, EXIT_FAIL, EXIT_INVALID = 0, 1, 2
DEFAULT_CONFIG = "/etc/lobbyd/lobbyd.yaml"


CONFIG_ENV = "LOBBYD_CONFIG"


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        "-c",
        default=None,
        help=f"daemon config file (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG})",
    )


def _resolve_config(args: argparse.Namespace) -> None:
    """Fill in ``args.config`` (``--config``, else ``$LOBBYD_CONFIG``, else the default) and say which on
    stderr, so that a check of the wrong file is never mistaken for a check of the right one."""
    if not hasattr(args, "config"):
        return
    if args.config is not None:
        source = "--config"
    elif os.environ.get(CONFIG_ENV):
        args.config, source = os.environ[CONFIG_ENV], CONFIG_ENV
    else:
        args.config, source = DEFAULT_CONFIG, "the default"
    args.config_source = source
    if args.command != "run":  # the daemon logs it once it holds its lock (a refused start says one line)
        print(f"lobbyd: config {args.config} (from {source})", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lobbyd",
        description="Lobby environment daemon for bank branches: MQTT sensors -> YAML rules -> Modbus "
        "fresh-air and lighting -> InfluxDB.",
        epilog="Exit codes: 0 ok, 1 runtime failure, 2 invalid config, rules or arguments.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the daemon (foreground; systemd runs this)")
    _config_arg(p)
    p.add_argument(
        "--strict",
        action="store_true",
        help="refuse to start (exit 2) if any rule file is invalid (default: start degraded, running the last good "
        "version of that file)",
    )
    p.add_argument(
        "--start-at",
        metavar="ISO",
        help="pretend the clock started at this local time (demos, tests), e.g. 2026-06-03T10:30",
    )
    p.add_argument(
        "--no-watch",
        action="store_true",
        help="reload the rules only on SIGHUP or `lobbyd reload`, not when a file in the rules directory changes",
    )
    p.add_argument("--log-level", default="INFO")

    p = sub.add_parser("check", help="validate config and rules; every problem with file:line:column")
    _config_arg(p)
    p.add_argument("paths", nargs="*", type=Path, help="rule files or directories (default: the config's rules_dir)")
    p.add_argument(
        "--replay",
        metavar="FEED",
        type=Path,
        help="what-if: run the rules on a recorded feed (JSONL/CSV) on a virtual clock, touching no device",
    )
    p.add_argument(
        "--diff",
        action="store_true",
        help="what these rules would change right now, against the rules in force (the running daemon's sensor "
        "values, or all unknown)",
    )

    p = sub.add_parser("schema", help="write JSON Schemas of rule, config and device profile files (editor completion)")
    p.add_argument("--out", type=Path, default=Path("config/schema"), help="directory (default config/schema)")

    p = sub.add_parser("status", help="ask the running daemon how it is; non-zero exit if something needs attention")
    _config_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("why", help="explain a device point's current setpoint (asks the running daemon)")
    _config_arg(p)
    p.add_argument("target", help="device or device.point, e.g. fresh_air or lights.cct")

    p = sub.add_parser("reload", help="ask the running daemon to reload its rules (same as SIGHUP)")
    _config_arg(p)

    p = sub.add_parser(
        "override", help="set a device point by hand for a while, or clear that (asks the running daemon)"
    )
    _config_arg(p)
    p.add_argument("target", help="device.point, e.g. fresh_air.fan_speed")
    p.add_argument("value", nargs="?", help="the value to hold, e.g. 2 (omit with --clear)")
    p.add_argument("--for", dest="duration", metavar="DURATION", help="how long, e.g. 30m or 2h (default 1h)")
    p.add_argument("--clear", action="store_true", help="end the override now; the rules decide again")

    p = sub.add_parser("simulate", help="run a scenario day through the real daemon on a virtual clock; report and PNG")
    p.add_argument(
        "scenario", nargs="?", help="scenario file, or a name in simulators/scenarios (e.g. pollution-episode)"
    )
    p.add_argument("--all", action="store_true", help="run every shipped scenario; write report.json and summary.txt")
    p.add_argument("--out", type=Path, default=Path("sim-out"), help="directory for the PNG and report")
    p.add_argument("--baselines", action="store_true", help="also run the fixed-fan and naive-threshold baselines")
    p.add_argument("--naive", action="store_true", help="also run the naive-threshold baseline (energy target)")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="with --all: scenarios run in N processes")
    p.add_argument("--influx", action="store_true", help="store the run's time series in a private influxd")

    p = sub.add_parser("record", help="write what arrives on the sensor topics to a feed (JSONL or CSV)")
    _config_arg(p)
    p.add_argument("--out", type=Path, required=True, help="feed file: .jsonl or .csv")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    return parser


def _load(path: str) -> LoadedConfig:
    return load_config(path)


def _clock(start_at: str | None, loaded: LoadedConfig) -> Clock:
    if not start_at:
        return SystemClock()
    t = dt.datetime.fromisoformat(start_at)
    if t.tzinfo is None:
        t = t.replace(tzinfo=loaded.site.tz)
    return OffsetClock(t.timestamp())


def _dump_tasks() -> None:
    """SIGUSR1: log every asyncio task with where it is waiting (for a daemon that seems stuck)."""
    import io
    import logging

    out = io.StringIO()
    for task in asyncio.all_tasks():
        out.write(f"task {task.get_name()}:\n")
        task.print_stack(limit=8, file=out)
    logging.getLogger("lobbyd").warning("task dump:\n%s", out.getvalue())


def cmd_run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    from daemon import systemd
    from daemon.app import build_daemon
    from daemon.instance import AlreadyRunning, StateLock
    from daemon.logs import install_log_rate_limit
    from daemon.reload import read_rules

    install_log_rate_limit()

    loaded = _load(args.config)
    lock = StateLock(loaded.state_dir)  # before anything touches the state directory (rules copy it there)
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        print(f"lobbyd: {exc}; not starting", file=sys.stderr)
        return EXIT_FAIL
    import logging

    logging.getLogger("lobbyd").info("config %s (from %s)", args.config, args.config_source)
    clock = _clock(args.start_at, loaded)

    async def main() -> int:
        # A bad or unreadable rule file does not stop the daemon (unless --strict): that file's last good
        # version (state directory) runs, or none of its rules, and `lobbyd status` says degraded and why.
        rules = await read_rules(loaded)
        if rules.errors:
            for e in rules.errors:
                print(f"error: {e}", file=sys.stderr)
            if args.strict:
                print(
                    "lobbyd: not starting: invalid rules (--strict); nothing was written to a device", file=sys.stderr
                )
                return EXIT_INVALID
            print(f"lobbyd: starting degraded: {rules.degraded}", file=sys.stderr)
        daemon = build_daemon(loaded, clock=clock, rules=rules, watch_rules=not args.no_watch)
        notifier = systemd.Notifier.from_env()  # systemd: READY/STATUS/WATCHDOG (no-op elsewhere)
        systemd.install_signal_handlers(daemon, notifier, Path(args.config))
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, _dump_tasks)
        try:
            await systemd.serve(daemon, notifier)
        finally:
            notifier.close()
        return EXIT_OK

    try:
        return asyncio.run(main())
    finally:
        lock.release()


def cmd_check(args: argparse.Namespace) -> int:
    from daemon.check import check, format_result

    result = check(Path(args.config), list(args.paths) or None)
    print(format_result(result))
    if not result.ok:
        return EXIT_INVALID
    if args.replay is not None:
        from daemon.whatif import format_report, replay

        assert result.loaded is not None and result.rules is not None  # ok implies both were loaded
        print(format_report(replay(result.loaded, result.rules.ruleset, args.replay)))
    if args.diff:
        from daemon.diff import diff_rules, format_diff

        assert result.loaded is not None and result.rules is not None
        print(format_diff(diff_rules(result.loaded, result.rules, files_given=bool(args.paths))))
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from daemon.schema import write_schemas

    for path in write_schemas(args.out):
        print(path)
    return EXIT_OK


def _ask(args: argparse.Namespace, req: dict[str, Any]) -> dict[str, Any] | None:
    """One request to the running daemon; ``None`` (after saying so on stderr) when none answers."""
    from daemon.control_socket import request

    loaded = _load(args.config)
    try:
        return asyncio.run(request(loaded.control_socket, req))
    except OSError as exc:
        print(f"lobbyd is not running (or its control socket is not reachable): {exc}", file=sys.stderr)
        return None


def cmd_status(args: argparse.Namespace) -> int:
    from daemon.status import format_status, needs_attention

    st = _ask(args, {"cmd": "status"})
    if st is None:
        return EXIT_FAIL
    problems = needs_attention(st)
    if args.json:
        print(json.dumps({**st, "problems": problems}, indent=2, default=str))
    else:
        print(format_status(st, problems))
    return EXIT_FAIL if problems else EXIT_OK


def cmd_why(args: argparse.Namespace) -> int:
    answer = _ask(args, {"cmd": "why", "target": args.target})
    if answer is None:
        return EXIT_FAIL
    if "error" in answer:
        print(answer["error"], file=sys.stderr)
        return EXIT_INVALID
    for target, text in answer["points"].items():
        print(f"{target}\n{text}\n")
    return EXIT_OK


def cmd_reload(args: argparse.Namespace) -> int:
    answer = _ask(args, {"cmd": "reload"})
    if answer is None:
        return EXIT_FAIL
    if "error" in answer:
        print(f"lobbyd reload: refused: {answer['error']}", file=sys.stderr)
        return EXIT_FAIL
    # The lines the daemon logged for this reload, as it logged them: what changed, then every error.
    for line in answer.get("lines") or [answer.get("text", answer)]:
        print(line)
    return EXIT_OK if answer.get("ok") else EXIT_INVALID


def cmd_override(args: argparse.Namespace) -> int:
    if args.clear == (args.value is not None) or (args.clear and args.duration):
        print("lobbyd override: give a value (and --for), or --clear", file=sys.stderr)
        return EXIT_INVALID
    req: dict[str, Any] = {"cmd": "override", "target": args.target}
    req.update({"clear": True} if args.clear else {"value": args.value})
    if args.duration is not None:
        req["duration"] = args.duration
    if os.environ.get("SUDO_USER"):  # who ran sudo (recorded as said, next to the socket's own user, root)
        req["by"] = os.environ["SUDO_USER"]
    answer = _ask(args, req)
    if answer is None:
        return EXIT_FAIL
    if "error" in answer:
        print(f"lobbyd override: refused: {answer['error']}", file=sys.stderr)
        return EXIT_INVALID
    print(answer.get("text", answer))
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace) -> int:
    from simulators.day import simulate_day

    if args.all == bool(args.scenario) or args.jobs < 1:
        print("lobbyd simulate: give one scenario, or --all (and --jobs 1 or more)", file=sys.stderr)
        return EXIT_INVALID
    if args.all:
        from simulators.suite import run_all, summary_text

        report = run_all(args.out, baselines=args.baselines, naive=args.naive, jobs=args.jobs)
        print(summary_text(report))
        print(f"\nreport: {args.out / 'report.json'}")
        return EXIT_OK
    outcome = asyncio.run(
        simulate_day(
            args.scenario, out=args.out, baselines=args.baselines, naive=args.naive, influx=args.influx, progress=True
        )
    )
    print(outcome.text)
    return EXIT_OK


def cmd_record(args: argparse.Namespace) -> int:
    from simulators.record import record

    loaded = _load(args.config)
    n = asyncio.run(record(loaded.config.mqtt, loaded.config.sensors, args.out, duration_s=args.duration))
    print(f"recorded {n} messages to {args.out}")
    return EXIT_OK


COMMANDS = {
    "run": cmd_run,
    "check": cmd_check,
    "schema": cmd_schema,
    "status": cmd_status,
    "why": cmd_why,
    "reload": cmd_reload,
    "override": cmd_override,
    "simulate": cmd_simulate,
    "record": cmd_record,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _resolve_config(args)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"lobbyd: invalid configuration:\n{exc}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        return EXIT_OK


def entry() -> None:
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())


if __name__ == "__main__":
    entry()
