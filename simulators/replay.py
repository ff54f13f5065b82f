"""Replay a recorded feed (``lobbyd record``'s JSONL or CSV) to MQTT at real time or N× speed.

    python -m simulators.replay FEED --config config/lobbyd.yaml --speed 60
    python -m simulators.replay FEED --host 127.0.0.1 --port 1883 --speed 0     (as fast as possible)
    python -m simulators.replay FEED --config config/lobbyd.yaml --daemon      (through the real daemon,
                                                                                on a virtual clock)

Gaps between messages are kept, divided by ``speed``; the sleep is injectable so a virtual clock
can drive it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiomqtt

from daemon.whatif import FeedError, read_feed

__all__ = ["main", "replay_feed"]


async def replay_feed(
    feed: Path,
    *,
    host: str,
    port: int,
    speed: float = 1.0,
    username: str | None = None,
    password: str | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    qos: int = 1,
) -> int:
    """Publish every message of ``feed`` in order; ``speed`` 0 means no pauses. Returns the count."""
    if speed < 0:
        raise ValueError("speed must be >= 0")
    messages = read_feed(feed)
    async with aiomqtt.Client(host, port, username=username, password=password, identifier="lobbyd-replay") as client:
        prev: float | None = None
        for m in messages:
            if prev is not None and speed > 0 and m.ts > prev:
                await sleep((m.ts - prev) / speed)
            prev = m.ts
            await client.publish(m.topic, m.payload, qos=qos, retain=m.retain)
    return len(messages)


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python -m simulators.replay", description=__doc__.split("\n")[0])
    p.add_argument("feed", type=Path)
    p.add_argument("--config", help="take the broker from this lobbyd config")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--speed", type=float, default=1.0, help="1 = real time, 60 = a minute per second, 0 = no pauses")
    p.add_argument(
        "--daemon",
        action="store_true",
        help="replay through the real daemon (built from --config) on "
        "a virtual clock, with private broker and device simulators; prints what it did",
    )
    args = p.parse_args(argv)
    if args.daemon:
        if not args.config:
            p.error("--daemon needs --config")
        from simulators.replay_daemon import format_daemon_replay, replay_through_daemon

        try:
            print(format_daemon_replay(asyncio.run(replay_through_daemon(Path(args.config), args.feed))))
        except FeedError as exc:
            print(exc, file=sys.stderr)
            return 2
        return 0
    host, port, user, pw = args.host, args.port, None, None
    if args.config:
        from daemon.config import load_config

        mqtt = load_config(args.config).config.mqtt
        host, port, user = mqtt.host, mqtt.port, mqtt.username
        secret = mqtt.password()
        pw = secret.get_secret_value() if secret is not None else None
    try:
        n = asyncio.run(replay_feed(args.feed, host=host, port=port, speed=args.speed, username=user, password=pw))
    except FeedError as exc:
        print(exc, file=sys.stderr)
        return 2
    except aiomqtt.MqttError as exc:
        print(f"replay: MQTT: {exc}", file=sys.stderr)
        return 1
    print(f"replayed {n} messages from {args.feed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
