"""``lobbyd simulate SCENARIO``: run a scenario (and its baselines), print the report, write the PNG.

python -m simulators.day pollution-episode --out /tmp/sim --baselines
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulators.figures import Figures, figures
from simulators.report import Quality, assess, format_report, plot_day
from simulators.scenario import load_scenario, scenario_paths
from simulators.simulate import RunResult, run_scenario
from simulators.variants import Variant

__all__ = ["NO_PNG", "DayOutcome", "main", "scenario_entry", "simulate_day"]

NO_PNG = "no PNG: matplotlib is not installed (pip install 'lobbyd[report]' to get the pictures)"


@dataclass
class DayOutcome:
    """What :func:`simulate_day` produced."""

    results: list[RunResult]
    qualities: list[Quality]
    figures: list[Figures]
    text: str
    png: Path | None


def scenario_entry(outcome: DayOutcome) -> dict[str, Any]:
    """The scenario's object in ``report.json``: its runs' figures by variant, energy ratios."""
    scn = outcome.results[0].scenario
    runs = {f.variant: f.as_json() for f in outcome.figures}
    entry: dict[str, Any] = {"description": scn.description, "runs": runs}
    kwh = {f.variant: f.fan_kwh for f in outcome.figures}
    for base in ("naive", "fixed"):
        other = kwh.get(base)
        entry[f"fan_kwh_vs_{base}"] = round(kwh["lobbyd"] / other, 3) if other else None
    return entry


async def simulate_day(
    scenario: str | Path,
    *,
    out: Path | None = None,
    baselines: bool = False,
    naive: bool = False,
    influx: bool = False,
    progress: bool = False,
) -> DayOutcome:
    """Run one scenario with lobbyd's rules (and the two baselines); report and, with ``out``, a PNG."""
    path = scenario_paths([str(scenario)])[0]
    scn = load_scenario(path)
    variants: list[Variant] = (
        ["lobbyd", "fixed", "naive"] if baselines else ["lobbyd", "naive"] if naive else ["lobbyd"]
    )
    tty = sys.stderr.isatty()
    results = []
    for v in variants:
        last = [-1]

        def show(frac: float, v: str = v, last: list[int] = last) -> None:
            pct = int(frac * 10)
            if progress and pct != last[0] and (tty or pct % 5 == 0):
                last[0] = pct
                line = f"  {scn.name} [{v}] {pct * 10:3d} %"
                print(f"\r{line}" if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)

        results.append(await run_scenario(scn, v, influx=influx and v == "lobbyd", on_progress=show))
        if progress and tty:
            print(file=sys.stderr)
    qualities = [assess(r) for r in results]
    png = None
    if out is not None:
        await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
        try:
            png = plot_day(results, out / f"{scn.name}.png")
        except ModuleNotFoundError as exc:
            if exc.name != "matplotlib":
                raise
    text = format_report(results, qualities, png)
    if out is not None and png is None:
        text += "\n  " + NO_PNG
    outcome = DayOutcome(results, qualities, [figures(r) for r in results], text, png)
    if out is not None:
        (out / f"{scn.name}.txt").write_text(text + "\n")
        doc = {"schema_version": 1, "scenarios": {scn.name: scenario_entry(outcome)}}
        (out / f"{scn.name}.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return outcome


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m simulators.day SCENARIO [--out DIR] [--baselines] [--influx]``."""
    p = argparse.ArgumentParser(prog="python -m simulators.day", description=__doc__.split("\n")[0])
    p.add_argument("scenario", help="scenario file or name (simulators/scenarios/NAME.yaml)")
    p.add_argument("--out", type=Path, default=Path("sim-out"), help="where the PNG and report go")
    p.add_argument("--baselines", action="store_true", help="also run the fixed-fan and naive-threshold baselines")
    p.add_argument("--influx", action="store_true", help="also store the lobbyd run's time series in a real influxd")
    args = p.parse_args(argv)
    from daemon.yamlsource import ConfigError

    try:
        outcome = asyncio.run(
            simulate_day(args.scenario, out=args.out, baselines=args.baselines, influx=args.influx, progress=True)
        )
    except ConfigError as exc:
        print(f"invalid scenario:\n{exc}", file=sys.stderr)
        return 2
    print(outcome.text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
