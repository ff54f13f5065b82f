"""The rule engine: a pure function of (rules, sensor readings, clock) → desired setpoints with reasons.

:func:`evaluate` never does I/O, never sleeps and never changes its arguments. What it must remember
between calls (hysteresis latches, ``for:`` start times, ramp positions, manual overrides) lives in an
:class:`EngineMemory` that is passed in and returned, so it can be persisted and a replay or simulation
can run a whole day in seconds. :func:`advance` moves that memory on for a reading without deciding
(readings faster than evaluations); :func:`explain_point` puts an evaluation in words for ``lobbyd why``.

Modules: ``types`` (values), ``ruleset`` (what is derived from the rules once), ``view`` (sensors),
``conditions``, ``actions``, ``evaluate`` (arbitration, ramps, overrides, clamping), ``explain``.
"""

from daemon.engine.actions import CIRCADIAN_EVERY_S
from daemon.engine.evaluate import Advanced, advance, evaluate, ramp_clears_deadband
from daemon.engine.explain import explain_point, format_age, lost_because
from daemon.engine.ruleset import RuleSet, condition_key
from daemon.engine.types import EngineMemory, Evaluation, Override, PointLimits, RuleTrace, SensorInfo
from daemon.engine.view import SensorView, zone_index

__all__ = [
    "CIRCADIAN_EVERY_S",
    "Advanced",
    "EngineMemory",
    "Evaluation",
    "Override",
    "PointLimits",
    "RuleSet",
    "RuleTrace",
    "SensorInfo",
    "SensorView",
    "advance",
    "condition_key",
    "evaluate",
    "explain_point",
    "format_age",
    "lost_because",
    "ramp_clears_deadband",
    "zone_index",
]
