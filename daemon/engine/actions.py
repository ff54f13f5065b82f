"""What an acting rule asks for: a fixed value, a curve or step table of an input, or the sun's colour."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import NamedTuple

from daemon.engine.view import SensorView, Used
from daemon.rules.model import Action, Circadian, Curve
from daemon.sun import Site, sun_position

__all__ = ["CIRCADIAN_EVERY_S", "ActionOutcome", "action_value", "interpolate", "step_row"]

CIRCADIAN_EVERY_S = 60.0  # the sun's colour is recomputed at least this often (Adaptive Lighting: 90 s)


class ActionOutcome(NamedTuple):
    """The value an action asks for, in words, with its inputs."""

    value: float | None  # None: an input it needs is unknown
    words: str
    used: tuple[Used, ...] = ()
    due: float = math.inf  # when the value can change with no new reading
    row: float | None = None  # what to hold: a step table's row (hysteresis), a value (min_change)


def interpolate(points: Sequence[tuple[float, float]], x: float) -> float:
    xs = [p[0] for p in points]
    if x <= xs[0]:
        return points[0][1]
    if x >= xs[-1]:
        return points[-1][1]
    i = bisect.bisect_right(xs, x)
    (x0, y0), (x1, y1) = points[i - 1], points[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def step_row(table: Sequence[tuple[float, float]], margin: float, x: float, row: float | None) -> tuple[int, bool]:
    """The row of ``table`` for input ``x``, and whether hysteresis held it: from the row whose ``from`` is
    ``row`` (if still in the table), the input must pass a boundary by ``margin`` to move up or down."""
    xs = [r[0] for r in table]
    plain = max(0, bisect.bisect_right(xs, x) - 1)
    if margin <= 0 or row is None or row not in xs:
        return plain, False
    held = xs.index(row)
    up = max(0, bisect.bisect_right(xs, x - margin) - 1)
    down = max(0, bisect.bisect_right(xs, x + margin) - 1)
    new = up if up > held else down if down < held else held
    return new, new != plain


def action_value(
    action: Action, view: SensorView, site: Site, now: float, *, sun_at: float | None = None, row: float | None = None
) -> ActionOutcome:
    """The value ``action`` asks for at ``now``, with its words; the sun is taken at wall time ``sun_at``
    (default ``now``); ``row`` is the ``from`` of the step-table row held since the last evaluation."""
    if action.value is not None:
        return ActionOutcome(action.value, f"set {action.value:g}")
    if action.curve is not None:
        inp = view.value(action.curve.input, now)
        key = action.curve.input.key
        if inp.value is None:
            return ActionOutcome(None, f"{key} is unknown", view.sources(action.curve.input, now))
        out = interpolate(action.curve.points, inp.value)
        words = f"curve of {key} = {inp.value:.4g} gives {out:.4g}"
        out, words, kept = _min_change(out, words, action.curve, row, action.curve.output_range)
        return ActionOutcome(out, words, view.sources(action.curve.input, now), inp.changes_at, kept)
    if action.steps is not None:
        inp = view.value(action.steps.input, now)
        key = action.steps.input.key
        if inp.value is None:
            return ActionOutcome(None, f"{key} is unknown", view.sources(action.steps.input, now))
        i, held = step_row(action.steps.table, action.steps.hysteresis, inp.value, row)
        from_, step = action.steps.table[i]
        words = f"step table of {key} = {inp.value:.4g} gives {step:g}"
        if held:
            words += f" (hysteresis {action.steps.hysteresis:g}: holds the row from {from_:g})"
        kept = from_ if action.steps.hysteresis > 0 else None
        return ActionOutcome(step, words, view.sources(action.steps.input, now), inp.changes_at, kept)
    assert action.circadian is not None
    circ = action.circadian
    due = now + CIRCADIAN_EVERY_S
    p = sun_position(site, now if sun_at is None else sun_at)
    frac = max(p, 0.0)
    text = f"sun position {p:.2f}"
    used: tuple[Used, ...] = ()
    if circ.daylight is not None:
        inp = view.value(circ.daylight, now)
        if inp.value is None:
            return ActionOutcome(None, f"{circ.daylight.key} is unknown", view.sources(circ.daylight, now), due)
        d = min(max(inp.value / circ.full_daylight_lux, 0.0), 1.0)
        frac = (1 - circ.daylight_weight) * frac + circ.daylight_weight * d
        text += f", daylight {inp.value:.4g} lx ({d:.0%} of full)"
        used, due = view.sources(circ.daylight, now), min(due, inp.changes_at)
    out = circ.min_k + (circ.max_k - circ.min_k) * frac
    out, words, kept = _min_change(out, f"circadian: {text} gives {out:.0f} K", circ, row, (circ.min_k, circ.max_k))
    return ActionOutcome(out, words, used, due, kept)


def _min_change(
    out: float, words: str, held: Curve | Circadian, last: float | None, bounds: tuple[float, float]
) -> tuple[float, str, float | None]:
    """Keep the value last given (``last``) while ``out`` differs from it by less than ``held.min_change``;
    when it moves, go ``held.lead`` past ``out`` in the direction of the move (within ``bounds``), so a
    steady trend takes a step every ``min_change + lead`` instead of every ``min_change``."""
    if held.min_change <= 0:
        return out, words, None
    if last is not None and abs(out - last) < held.min_change:
        return last, words + f"; keeps {last:.4g} (moves only by min_change {held.min_change:g} or more)", last
    if last is not None and held.lead > 0:
        led = min(max(out + math.copysign(held.lead, out - last), bounds[0]), bounds[1])
        if led != out:
            words += f"; leads to {led:.4g} ({held.lead:g} ahead of the move)"
        out = led
    return out, words, out
