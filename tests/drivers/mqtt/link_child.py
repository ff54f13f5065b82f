"""A process that only runs an MqttLink (for the LWT test, which kills it with SIGKILL)."""

from __future__ import annotations

import asyncio
import sys

from drivers.clock import SystemClock
from drivers.mqtt import MqttConfig, MqttLink


async def main(port: int, branch: str) -> None:
    link = MqttLink(
        MqttConfig(host="127.0.0.1", port=port, keepalive_s=5),
        branch=branch,
        subscriptions=[],
        clock=SystemClock(),
    )
    await link.run(lambda _m: None)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
