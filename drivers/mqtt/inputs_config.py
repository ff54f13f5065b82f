"""Configuration of a sensor's input conditioning: ``filter:`` and ``stuck:`` under a sensor.

Both are optional; a sensor without them is used exactly as read. The conditioning itself is in
:mod:`daemon.inputs`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["FilterConfig", "StuckConfig"]

_FROZEN = ConfigDict(extra="forbid", frozen=True)


class FilterConfig(BaseModel):
    """One filter: the median of the last N readings, or an exponential average over time T.

    The rules see the filtered value; the raw one is still recorded and shown.
    """

    model_config = _FROZEN
    median_of: int | None = Field(
        default=None, ge=2, le=101, description="the median of the last N readings (2–101); a spike is ignored"
    )
    ema_s: float | None = Field(
        default=None,
        gt=0,
        le=86_400,
        description="exponential average with time constant T seconds, weighted by the time between readings",
    )

    @model_validator(mode="after")
    def _one(self) -> FilterConfig:
        if (self.median_of is None) == (self.ema_s is None):
            raise ValueError("a filter is either median_of: N or ema_s: T (give exactly one)")
        return self


class StuckConfig(BaseModel):
    """A sensor whose value does not move by ``min_change`` for ``after_s`` is taken as unavailable."""

    model_config = _FROZEN
    after_s: float = Field(gt=0, le=7 * 86_400, description="how long the value may stay put (seconds)")
    min_change: float = Field(gt=0, description="the smallest move that counts, in the quantity's unit")
