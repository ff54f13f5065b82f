"""End-to-end benchmark of the real daemon (``python -m daemon run``) on loopback.

Throughput: N sensor messages (the shipped lobby's four topics in turn: plain PM2.5, Zigbee2MQTT
climate with two readings, JSON lux, plain outdoor PM2.5) are written as one burst of pre-encoded
QoS 0 PUBLISH packets to a real mosquitto. The rate is N over the time from the first byte sent to
the moment the receiver has them all; zero loss is checked (every message counted, every reading
accepted, none rejected, every reading present in InfluxDB). The same burst goes, in the same run
and to the same broker, to a bare aiomqtt subscriber and to a raw paho callback loop that only count.

Latency (bench/latency.py): a PM2.5 publish that crosses a rule's threshold until the Modbus write
arrives at the device simulator, against the libraries' floor measured in the same run.

Profile: a second throughput run with py-spy sampling the daemon (when py-spy is installed).

Run alone: ``.venv/bin/python -m bench.bench_e2e [--n 60000]``; ``python -m bench`` runs it with the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.latency import START_AT, latency_runs
from bench.rig import (
    RawPublisher,
    daemon_config,
    daemon_status,
    device_sims,
    mqtt_connected,
    proc_sample,
    publish_packet,
    py,
    receiver_run,
    stop,
    wait_for,
)


@dataclass
class Throughput:
    name: str
    messages: int
    received: int
    seconds: float
    readings: int = 0
    evaluations: int = 0
    influx_points: int | None = None
    influx_s: float | None = None
    cpu_s: float | None = None
    rss_mb: float | None = None

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


@dataclass
class E2EResult:
    n: int
    throughput: list[Throughput] = field(default_factory=list)
    latency: dict[str, tuple[float, float, int]] = field(default_factory=dict)  # name -> (p50 ms, p99 ms, n)
    profile: list[tuple[str, float, float]] = field(default_factory=list)  # function, self %, total %
    profile_note: str = ""
    notes: list[str] = field(default_factory=list)
    rounds: list[tuple[float, float]] = field(default_factory=list)  # (bare aiomqtt msg/s, lobbyd msg/s)


# ---- the message mix ----------------------------------------------------------------------------
def message_mix(config_path: Path, n: int) -> tuple[bytes, int]:
    """N messages over the lobby's sensor topics; returns (wire bytes, readings they carry)."""
    from daemon.config import load_config
    from simulators.sensors import payload_for

    sensors = load_config(config_path).config.sensors
    by_topic: dict[str, list[Any]] = {}
    for s in sensors:
        by_topic.setdefault(s.topic, []).append(s)
    topics = sorted(by_topic)
    base = {"pm25": 10.0, "temperature": 23.0, "humidity": 45.0, "illuminance": 300.0}
    parts: list[bytes] = []
    readings = 0
    for i in range(n):
        topic = topics[i % len(topics)]
        group = by_topic[topic]
        # small variations below every threshold: state, rules and time series all work, no chattering
        values = {s.id: base.get(str(s.quantity), 1.0) + (i % 40) / 10 for s in group}
        parts.append(publish_packet(topic, payload_for(group, values)))
        readings += len(group)
    return b"".join(parts), readings


# ---- reference receivers ------------------------------------------------------------------------
def reference_run(kind: str, port: int, blob: bytes, n: int) -> Throughput:
    got = receiver_run(kind, port, blob, n)
    name = {"aiomqtt": "bare aiomqtt subscriber (async for)", "paho": "raw paho callback loop"}[kind]
    return Throughput(name, n, got.count, got.seconds, cpu_s=got.cpu_s, rss_mb=got.rss_mb)


# ---- the daemon -----------------------------------------------------------------------------------
def _readings_in_influx(url: str, db: str) -> int:
    import urllib.parse
    import urllib.request

    q = urllib.parse.urlencode({"q": "SELECT count(value) FROM reading", "db": db}).encode()
    with urllib.request.urlopen(f"{url}/query", data=q, timeout=10) as resp:
        data = json.loads(resp.read())
    series = data["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


@dataclass(frozen=True)
class Burst:
    """What one throughput run sends: the wire bytes, their message and reading counts, the broker."""

    blob: bytes
    n: int
    readings: int
    port: int


def daemon_run(cfg: Path, burst: Burst, influx: tuple[str, str], *, profile: Path | None) -> Throughput:
    """Start the daemon on ``cfg``, send the burst, time it; py-spy samples it if ``profile`` is set."""
    port, blob, n, readings = burst.port, burst.blob, burst.n, burst.readings
    sock = cfg.parent / "state" / "control.sock"
    log = cfg.parent / "daemon.log"
    proc = py("-m", "daemon", "run", "--config", str(cfg), "--start-at", START_AT, log=log)
    spy: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: mqtt_connected(sock), timeout=30, what="daemon connected to MQTT", every=0.05)
        st0 = daemon_status(sock)
        a0, e0 = st0["mqtt"]["accepted"], st0["evaluations"]
        if profile is not None:
            spy = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(proc.pid), "--rate", "250",
                 "--format", "raw", "--output", str(profile), "--nonblocking", "--gil", "--duration", "120"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1.0)  # py-spy attaches
        s0 = proc_sample(proc.pid)
        pub = RawPublisher(port, "bench-pub-daemon")
        t0 = time.monotonic()
        pub.send(blob)
        # polled every 5 ms: the light "counters" query, so the polling itself costs the daemon little
        try:
            t1 = wait_for(lambda: daemon_status(sock, "counters")["accepted"] >= a0 + readings, timeout=120,
                          what="daemon accepted all readings", every=0.005)  # fmt: skip
        except TimeoutError as exc:
            mq, ct = daemon_status(sock)["mqtt"], daemon_status(sock, "counters")
            seen = {k: mq.get(k) for k in ("discarded", "connected", "connects")}
            seen |= {k: ct[k] for k in ("received", "accepted", "rejected", "evaluations")}
            raise TimeoutError(f"{exc}: expected {readings} more accepted than {a0}; daemon shows {seen}") from None
        s1 = proc_sample(proc.pid)
        pub.close()
        st1 = daemon_status(sock)
        t2 = wait_for(lambda: _readings_in_influx(*influx) >= readings, timeout=120, what="readings in InfluxDB",
                      every=0.05)  # fmt: skip
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        counters = daemon_status(sock, "counters")
        rejected = {k: v for k, v in counters["rejected"].items() if v}
        if rejected:
            raise RuntimeError(f"daemon rejected messages: {rejected}")
        return Throughput(
            "lobbyd (MQTT → state → rules → Modbus, time series)",
            n,
            n if st1["mqtt"]["accepted"] - a0 == readings else -1,
            t1 - t0,
            readings=st1["mqtt"]["accepted"] - a0,
            evaluations=st1["evaluations"] - e0,
            influx_points=_readings_in_influx(*influx),
            influx_s=t2 - t0,
            cpu_s=s1.cpu_s - s0.cpu_s,
            rss_mb=s1.rss_mb,
        )
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
            spy.wait()
        stop(proc)


def summarise_profile(raw: Path, top: int = 12) -> list[tuple[str, float, float]]:
    """py-spy raw (collapsed) stacks → (function, self %, inclusive %), the top by self time."""
    self_n: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line_ in raw.read_text().splitlines():
        stack, _, count_s = line_.rpartition(" ")
        if not stack:
            continue
        count = int(count_s)
        total += count
        frames = [_short(f) for f in stack.split(";")]
        self_n[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    if not total:
        return []
    return [(f, 100 * c / total, 100 * incl[f] / total) for f, c in self_n.most_common(top)]


def _short(frame: str) -> str:
    """``func (path/to/mod.py:12)`` → ``mod.py:func``."""
    func, _, rest = frame.partition(" (")
    path = rest.split(":")[0]
    parts = Path(path).parts
    keep = "/".join(parts[-2:]) if len(parts) >= 2 else path
    return f"{keep}:{func}"


# ---- the whole benchmark ------------------------------------------------------------------------
async def bench(n: int, samples: int, *, profile: bool = True, rounds: int = 3) -> E2EResult:
    from simulators.servers import InfluxServer, MosquittoServer

    res = E2EResult(n)
    tmp = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    mosq = MosquittoServer(tmp / "mosquitto", extra_config="log_type notice")  # notices say when it drops messages
    idb = InfluxServer(tmp / "influxd")
    mosq.start()
    idb.start()
    try:
        async with device_sims() as sims:
            ports = {k: s.port for k, s in sims.items()}
            runs = [(f"run{k}", f"bench_run{k}") for k in range(rounds)] + [("profile", "bench_profile")]
            cfgs = {}
            for name, db in runs:
                idb.create_database(db)
                cfgs[name] = daemon_config(tmp / name, mqtt_port=mosq.port, device_ports=ports, influx_url=idb.url,
                                           database=db)  # fmt: skip
            blob, readings = message_mix(cfgs["run0"], n)
            burst = Burst(blob, n, readings, mosq.port)
            # Rounds alternate the bare subscriber and the daemon, so that a shared host's drift hits both.
            for k in range(rounds):
                bare = await asyncio.to_thread(reference_run, "aiomqtt", mosq.port, blob, n)
                if k == 0:
                    res.throughput.append(bare)
                    res.throughput.append(await asyncio.to_thread(reference_run, "paho", mosq.port, blob, n))
                t = await asyncio.to_thread(
                    daemon_run, cfgs[f"run{k}"], burst, (idb.url, f"bench_run{k}"), profile=None
                )
                if k == 0:
                    res.throughput.append(t)
                res.rounds.append((bare.rate, t.rate if t.received == n else 0.0))
            spy = Path(sys.executable).parent / "py-spy"
            if profile and spy.exists():
                raw = tmp / "profile.txt"
                try:
                    await asyncio.to_thread(daemon_run, cfgs["profile"], burst, (idb.url, "bench_profile"), profile=raw)
                    res.profile = summarise_profile(raw) if raw.exists() else []
                except (RuntimeError, TimeoutError, OSError) as exc:
                    res.profile_note = f"profile run failed: {exc}"
            elif profile:
                res.profile_note = "py-spy not installed (pip install py-spy): no profile"
        res.latency.update(await latency_runs(tmp, mosq.port, samples))
    except BaseException:
        print(f"bench_e2e failed; its files are kept in {tmp}", file=sys.stderr)
        raise
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    finally:
        mosq.close()
        idb.close()
    return res


def markdown(res: E2EResult) -> str:
    """The result as markdown tables (ratios against the references measured in the same run)."""
    out = [f"Burst of {res.n:,} QoS 0 messages (4 topics, 1.25 readings per message) through one local mosquitto.\n"]
    out.append("| receiver | messages/s | lost | CPU s | RSS MB | ratio vs bare aiomqtt | ratio vs raw paho |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    ref = {t.name.split(" ")[1]: t.rate for t in res.throughput[:2]}
    for t in res.throughput:
        out.append(
            f"| {t.name} | {t.rate:,.0f} | {t.messages - t.received if t.received >= 0 else 'readings!'} | "
            f"{t.cpu_s:.2f} | {t.rss_mb:.0f} | {t.rate / ref['aiomqtt']:.2f} | {t.rate / ref['paho']:.2f} |"
            if t.cpu_s is not None and t.rss_mb is not None
            else f"| {t.name} | {t.rate:,.0f} | {t.messages - t.received} | – | – | "
            f"{t.rate / ref['aiomqtt']:.2f} | {t.rate / ref['paho']:.2f} |"
        )
    if res.rounds:
        ratios = sorted(lob / bare for bare, lob in res.rounds)
        out.append("\n| round | bare aiomqtt msg/s | lobbyd msg/s | ratio |")
        out.append("|---:|---:|---:|---:|")
        for k, (bare, lob) in enumerate(res.rounds, 1):
            out.append(f"| {k} | {bare:,.0f} | {lob:,.0f} | {lob / bare:.2f} |")
        out.append(
            f"\nlobbyd / bare aiomqtt: median {ratios[len(ratios) // 2]:.2f} ({ratios[0]:.2f}–{ratios[-1]:.2f})."
        )
    d = res.throughput[-1]
    if d.influx_s is not None:
        out.append(
            f"\nlobbyd: {d.readings:,} readings accepted, {d.influx_points:,} in InfluxDB "
            f"(all of them {d.influx_s:.2f} s after the first byte: {d.readings / d.influx_s:,.0f} points/s); "
            f"{d.evaluations:,} rule evaluations ({d.evaluations / d.messages:.3f} per message: bursts coalesce)."
        )
    out.append("\n| latency | p50 ms | p99 ms | samples |")
    out.append("|---|---:|---:|---:|")
    for name, (p50, p99, k) in res.latency.items():
        out.append(f"| {name} | {p50:.2f} | {p99:.2f} | {k} |")
    floor = [v for k, v in res.latency.items() if k.startswith("floor")]
    main = [v for k, v in res.latency.items() if k.startswith("lobbyd")]
    if main and len(floor) == 2:
        f99 = floor[0][1] + floor[1][1]
        out.append(f"\nlobbyd p99 / (MQTT p99 + Modbus p99) = {main[0][1]:.2f} / {f99:.2f} = {main[0][1] / f99:.2f}×")
    if res.profile:
        out.append("\nProfile of the daemon during the burst (py-spy, 250 Hz, self time, top functions):\n")
        out.append("| function | self % | inclusive % |")
        out.append("|---|---:|---:|")
        for f, s, i in res.profile:
            out.append(f"| `{f}` | {s:.1f} | {i:.1f} |")
    if res.profile_note:
        out.append(f"\n{res.profile_note}")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60_000, help="messages in the burst")
    ap.add_argument("--samples", type=int, default=300, help="latency samples")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of the bare subscriber and the daemon")
    a = ap.parse_args()
    res = asyncio.run(bench(a.n, a.samples, profile=not a.no_profile, rounds=max(1, a.rounds)))
    print(markdown(res))


if __name__ == "__main__":
    main()
