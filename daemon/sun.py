"""The sun at the branch: event times (astral) and Adaptive Lighting's sun position."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from astral import LocationInfo
from astral.sun import sun

__all__ = ["Site", "SunDay", "is_dark", "sun_day", "sun_position"]


@dataclass(frozen=True)
class Site:
    latitude: float
    longitude: float
    timezone: str

    @functools.cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class SunDay:
    """POSIX times of the day's sun events (local calendar day at the site)."""

    dawn: float
    sunrise: float
    noon: float
    sunset: float
    dusk: float

    def event(self, name: str) -> float:
        value: float = getattr(self, name)
        return value


@functools.lru_cache(maxsize=64)
def _sun_day(latitude: float, longitude: float, timezone: str, day: dt.date) -> SunDay:
    tz = ZoneInfo(timezone)
    loc = LocationInfo("site", "", timezone, latitude, longitude)
    try:
        s = sun(loc.observer, date=day, tzinfo=tz)
    except ValueError:
        # Polar day or night: no sunrise. Treat noon ± 12 h as a whole dark (or bright) day.
        noon = dt.datetime.combine(day, dt.time(12), tz).timestamp()
        return SunDay(noon, noon, noon, noon, noon)
    return SunDay(
        dawn=s["dawn"].timestamp(),
        sunrise=s["sunrise"].timestamp(),
        noon=s["noon"].timestamp(),
        sunset=s["sunset"].timestamp(),
        dusk=s["dusk"].timestamp(),
    )


def sun_day(site: Site, t: float) -> SunDay:
    day = dt.datetime.fromtimestamp(t, ZoneInfo(site.timezone)).date()
    return _sun_day(site.latitude, site.longitude, site.timezone, day)


def sun_position(site: Site, t: float) -> float:
    """Adaptive Lighting's sun position: 1 at solar noon, 0 at sunrise and sunset, negative at night.

    Daytime: ``1 - ((t - noon) / (noon - edge))**2`` with ``edge`` the sunrise (morning) or sunset
    (afternoon); at night the same parabola around solar midnight, going to -1.
    """
    d = sun_day(site, t)
    if d.sunrise == d.sunset:
        return -1.0
    if d.sunrise <= t <= d.sunset:
        edge = d.sunrise if t < d.noon else d.sunset
        return 1.0 - ((t - d.noon) / (d.noon - edge)) ** 2
    # Night: the midnight between the nearest sunset and the next sunrise.
    if t < d.sunrise:
        prev = sun_day(site, t - 86400)
        start, end = prev.sunset, d.sunrise
    else:
        nxt = sun_day(site, t + 86400)
        start, end = d.sunset, nxt.sunrise
    midnight = (start + end) / 2
    edge = start if t < midnight else end
    return -1.0 + ((t - midnight) / (midnight - edge)) ** 2


def is_dark(site: Site, t: float) -> bool:
    """Night at the site at wall time ``t``: before dawn or after dusk (civil twilight), daylight about 0."""
    day = sun_day(site, t)
    return not day.dawn <= t <= day.dusk
