"""The MQTT link alone against a bare aiomqtt subscriber, on the same broker in the same run.

A burst of N pre-encoded QoS 0 PUBLISH packets (sensor-like JSON on 50 topics) is written to a real
mosquitto; each receiver (``bench/receivers.py``: ``aiomqtt``, the plain ``async for`` loop, and
``link``, :class:`drivers.mqtt.MqttLink` with a handler that only counts) runs in its own process
and is timed from the first byte sent until it has counted all N. Zero loss is checked. The two
alternate for ``--rounds`` rounds so that the host's drift hits both alike; the result is each
round's ratio and their median. The whole daemon must reach 0.5× the bare subscriber (bench_e2e):
what the link costs beyond aiomqtt is what is left for decoding and the rules.

Run: ``.venv/bin/python -m bench.bench_link [--n 60000] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.rig import publish_packet, receiver_run

TOPIC_FILTER = "bench/#"
KINDS = ("aiomqtt", "link")


@dataclass(frozen=True)
class Run:
    """One receiver's burst: messages counted, seconds, CPU seconds and resident memory at the end."""

    kind: str
    n: int
    received: int
    seconds: float
    cpu_s: float
    rss_mb: float

    @property
    def rate(self) -> float:
        return self.n / self.seconds


def burst(n: int) -> bytes:
    """N sensor-like messages on 50 topics, pre-encoded."""
    return b"".join(
        publish_packet(f"bench/sensor{i % 50}", b'{"temperature":%.1f,"humidity":%d}' % (20 + i % 50 / 10, 40 + i % 9))
        for i in range(n)
    )


def receive(kind: str, port: int, blob: bytes, n: int) -> Run:
    """Start the receiver, send the burst, return its figures."""
    got = receiver_run(kind, port, blob, n, topic=TOPIC_FILTER)
    if got.cpu_s is None or got.rss_mb is None:
        raise RuntimeError(f"{kind} receiver exited before it was sampled")
    return Run(kind, n, got.count, got.seconds, got.cpu_s, got.rss_mb)


def bench(n: int, rounds: int) -> list[dict[str, Run]]:
    """``rounds`` rounds, each running every receiver once on one broker."""
    from simulators.servers import MosquittoServer

    blob = burst(n)
    with tempfile.TemporaryDirectory(prefix="bench-link-") as tmp:
        mosq = MosquittoServer(Path(tmp) / "mosquitto")
        mosq.start()
        try:
            out = []
            for r in range(rounds):
                kinds = KINDS if r % 2 == 0 else KINDS[::-1]
                out.append({k: receive(k, mosq.port, blob, n) for k in kinds})
            return out
        finally:
            mosq.close()


def markdown(results: list[dict[str, Run]]) -> str:
    """One row per round and the median ratio."""
    n = results[0]["link"].n
    out = [
        f"Burst of {n:,} QoS 0 messages (50 topics, ~40-byte JSON) through one local mosquitto; "
        "each receiver in its own process.\n",
        "| round | bare aiomqtt msg/s | link msg/s | lost (aiomqtt, link) | CPU s (aiomqtt, link) "
        "| RSS MB (aiomqtt, link) | link / aiomqtt |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ratios = []
    for i, r in enumerate(results, 1):
        a, link = r["aiomqtt"], r["link"]
        ratios.append(link.rate / a.rate)
        out.append(
            f"| {i} | {a.rate:,.0f} | {link.rate:,.0f} | {a.n - a.received}, {link.n - link.received} "
            f"| {a.cpu_s:.2f}, {link.cpu_s:.2f} | {a.rss_mb:.0f}, {link.rss_mb:.0f} | {ratios[-1]:.2f} |"
        )
    out.append(f"\nlink / bare aiomqtt: median {statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f}).")
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60_000, help="messages in the burst")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    results = bench(a.n, a.rounds)
    print(markdown(results))
    lost = any(run.received != run.n for r in results for run in r.values())
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
