"""``lobbyd check``: validate the config and the rules together, the way the daemon will load them.

Every problem is an :class:`~daemon.yamlsource.ErrorItem` with file:line:column, the offending key
or value, and a did-you-mean for misspelt keys and names. Rules are checked against the sensors and
device points the config declares. Values that the engine would silently clamp (a curve or step
table reaching outside a point's range) are *warnings*: the daemon runs them, clamped.

``lobbyd check FILE...`` checks edited copies before they are deployed: a given file replaces the
rules-directory file of the same name, and the other files of the rules directory still provide
their schedules (so ``schedule: opening-hours`` resolves). A given file with top-level ``points:``
and no ``rules:`` is a device profile (docs/profiles.md) and is checked as one, used by a device or not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from daemon.config import LoadedConfig, load_config
from daemon.engine import PointLimits
from daemon.rules.lint import dst_warnings, hysteresis_warnings, more_problems, ramp_warnings, same_priority_warnings
from daemon.rules.load import LoadedRules, RuleContext, load_rules, parse_rule_file, rule_files
from daemon.yamlsource import ConfigError, ErrorItem, load_yaml
from drivers.modbus.profile import load_profile

__all__ = ["CheckResult", "check", "format_result"]


@dataclass
class CheckResult:
    """What ``check`` found. ``ok`` means no errors (warnings allowed); exit code 2 otherwise."""

    config_path: Path
    errors: list[ErrorItem] = field(default_factory=list)
    warnings: list[ErrorItem] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # rule files that were checked
    profiles: list[Path] = field(default_factory=list)  # device profiles given on the command line
    loaded: LoadedConfig | None = None
    rules: LoadedRules | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


def _expand(paths: Sequence[Path]) -> tuple[list[Path], list[ErrorItem]]:
    out: list[Path] = []
    errors: list[ErrorItem] = []
    for p in paths:
        if p.is_dir():
            out.extend(rule_files(p))
        elif p.is_file():
            out.append(p)
        else:
            errors.append(ErrorItem(str(p), 1, 1, "no such file or directory"))
    return [p.resolve() for p in out], errors


def _profiles(paths: Sequence[Path]) -> tuple[list[Path], list[Path], list[ErrorItem]]:
    """(profiles, other files, the profiles' errors): a profile has top-level ``points:``, no ``rules:``."""
    profiles: list[Path] = []
    others: list[Path] = []
    errors: list[ErrorItem] = []
    for path in paths:
        try:
            data = load_yaml(path).data
        except ConfigError:
            data = None  # the rule loader reports it
        if not (isinstance(data, dict) and "points" in data and "rules" not in data):
            others.append(path)
            continue
        profiles.append(path)
        try:
            load_profile(path)
        except ConfigError as exc:
            errors.extend(exc.errors)
    return profiles, others, errors


def _shape_only(files: Sequence[Path]) -> list[ErrorItem]:
    """Without a valid config only the shape of each rule file can be checked."""
    errors: list[ErrorItem] = []
    for path in files:
        try:
            parse_rule_file(path)
        except ConfigError as exc:
            errors.extend(exc.errors)
    return errors


def _range_warnings(rules: LoadedRules, points: Mapping[str, PointLimits]) -> list[ErrorItem]:
    warnings: list[ErrorItem] = []
    for name in sorted(rules.files):
        gf = rules.files[name]
        for i, rule in enumerate(gf.parsed.rules):
            lim = points.get(rule.target)
            if lim is None:
                continue
            table: list[tuple[str, int, float]] = []
            if rule.set.curve is not None:
                table = [("points", j, y) for j, (_, y) in enumerate(rule.set.curve.points)]
            elif rule.set.steps is not None:
                table = [("table", j, y) for j, (_, y) in enumerate(rule.set.steps.table)]
            kind = "curve" if rule.set.curve is not None else "steps"
            for key, j, y in table:
                if lim.clamp(y) != y:
                    warnings.append(
                        gf.doc.error(
                            ("rules", i, "set", kind, key, j, 1),
                            f"{y:g} is outside the range of {rule.target} ({lim.describe()}); "
                            f"it will be clamped to {lim.clamp(y):g}",
                        )
                    )
            circ = rule.set.circadian
            if circ is not None:
                for key, k in (("min_k", circ.min_k), ("max_k", circ.max_k)):
                    if lim.clamp(k) != k:
                        warnings.append(
                            gf.doc.error(
                                ("rules", i, "set", "circadian", key),
                                f"{k:g} is outside the range of {rule.target} ({lim.describe()}); "
                                f"it will be clamped to {lim.clamp(k):g}",
                            )
                        )
    return warnings


def check(config_path: Path, rule_paths: Sequence[Path] | None = None) -> CheckResult:
    """Validate ``config_path`` and the rules (the config's ``rules_dir``, or ``rule_paths``)."""
    result = CheckResult(Path(config_path))
    given, missing = _expand(rule_paths or [])
    result.errors.extend(missing)
    result.profiles, given, profile_errors = _profiles(given)
    result.errors.extend(profile_errors)
    rule_paths = rule_paths if given or not result.profiles else None
    try:
        loaded = load_config(config_path)
    except ConfigError as exc:
        result.errors.extend(exc.errors)
        files = given if rule_paths else []
        result.files = files
        result.errors.extend(_shape_only(files))
        return result
    result.loaded = loaded
    ctx = RuleContext(loaded.sensor_infos(), loaded.point_limits())
    directory = loaded.rules_dir
    if rule_paths:
        names = {p.name for p in given}
        others = [p.resolve() for p in rule_files(directory)] if directory.is_dir() else []
        context_files = [p for p in others if p.name not in names and p not in given]
        rules = load_rules(
            directory,
            ctx,
            files=[*given, *context_files],
            limits=loaded.config.rule_files,
            established={str(p) for p in context_files},
        )
        checked = {str(p) for p in given}
        result.errors.extend(e for e in rules.errors if e.file in checked or e.file not in {str(p) for p in others})
        result.files = given
    else:
        last_good = loaded.state_dir / "rules-last-good"  # read only: which files the daemon already runs
        running = {str(directory / p.name) for p in rule_files(last_good)} if last_good.is_dir() else set()
        rules = load_rules(directory, ctx, limits=loaded.config.rule_files, established=running)
        result.errors.extend(rules.errors)
        result.files = [p.resolve() for p in rule_files(directory)] if directory.is_dir() else []
    result.rules = rules
    failed = sorted({e.file for e in result.errors} & {str(p) for p in result.files})
    result.errors.extend(
        more_problems([Path(f) for f in failed], ctx, rules.ruleset.schedules, loaded.config.rule_files)
    )
    result.errors = sorted(set(result.errors), key=lambda e: (e.file, e.line, e.column, e.message))
    result.warnings.extend(_range_warnings(rules, ctx.points))
    result.warnings.extend(same_priority_warnings(rules))
    # About the rule files asked about (all of rules/ by default; none when only profiles were named).
    checked_files = set() if result.profiles and not given else {str(p) for p in result.files}
    result.warnings.extend(w for w in hysteresis_warnings(rules) if w.file in checked_files)
    result.warnings.extend(dst_warnings(rules, loaded.config.site.timezone))
    result.warnings.extend(ramp_warnings(rules, {t: loaded.safety_for(t).deadband for t in ctx.points}))
    return result


def format_result(result: CheckResult) -> str:
    """Errors and warnings one per line (``file:line:column: message (key path)``), then a summary."""
    lines = [f"{e}" for e in result.errors]
    lines += [
        f"{w.file}:{w.line}:{w.column}: warning: {w.message}" + (f" ({w.path})" if w.path else "")
        for w in result.warnings
    ]
    nfiles = len(result.files)
    if result.errors:
        bad = len({e.file for e in result.errors})
        lines.append(f"{len(result.errors)} error(s) in {bad} file(s); nothing was changed")
    else:
        nrules = len(result.rules.ruleset.rules) if result.rules is not None else 0
        lines.append(
            f"ok: {result.config_path} and {nfiles} rule file(s), {nrules} rule(s)"
            + (f", {len(result.profiles)} device profile(s)" if result.profiles else "")
            + (f", {len(result.warnings)} warning(s)" if result.warnings else "")
        )
    return "\n".join(lines)
