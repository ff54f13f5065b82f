"""The virtual readings that follow from one reading as the rules see it: daylight, then trends.

One place for the order, so that the daemon (:class:`daemon.intake.Intake`) and the what-if
(:mod:`daemon.whatif`) derive the same readings from the same feed.
"""

from __future__ import annotations

from collections.abc import Callable, Container

from daemon.inputs.trend import Trends
from daemon.inputs.virtual import VirtualSensors
from daemon.model import Reading

__all__ = ["Derived"]


class Derived:
    """Daylight virtual sensors and trends, composed. No I/O."""

    def __init__(self, virtual: VirtualSensors | None = None, trends: Trends | None = None) -> None:
        self.virtual = virtual if virtual else None
        self.trends = trends if trends else None

    def __bool__(self) -> bool:
        return self.virtual is not None or self.trends is not None

    def follow(self, seen: Reading, *, accept: Callable[[Reading], bool], stuck: Container[str] = ()) -> list[Reading]:
        """The derived readings ``accept`` took (the sensor state's ``update``), in order: the daylight
        readings from ``seen``, then the trends of ``seen`` (not while its sensor is stuck: a trend of
        a stuck value would say "steady") and of each daylight reading."""
        out: list[Reading] = []
        sources = [] if seen.sensor in stuck else [seen]
        for v in self.virtual.on_reading(seen) if self.virtual is not None else ():
            if accept(v):
                out.append(v)
                sources.append(v)
        if self.trends is not None:
            for src in sources:
                out.extend(t for t in self.trends.on_reading(src) if accept(t))
        return out
