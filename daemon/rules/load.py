"""Load a rules directory: validate each file on its own, check references, keep the last good version.

A bad file never takes the others down: its errors are reported with file:line:column and, when
an earlier good version of that file is known (in memory, or saved under the state directory),
that version keeps running. Only a file that never validated contributes no rules.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from daemon.engine import PointLimits, RuleSet, SensorInfo
from daemon.rules.model import Input, Rule, RuleFile, Schedule
from daemon.yamlsource import (
    DEFAULT_LIMITS,
    ConfigError,
    ErrorItem,
    SourceDoc,
    YamlLimits,
    did_you_mean,
    load_yaml,
    read_text,
    validate,
)
from drivers.writefault import describe

__all__ = [
    "LoadedRules",
    "ParsedFile",
    "RuleContext",
    "duplicate_ids",
    "load_rules",
    "parse_rule_file",
    "references",
    "rule_files",
    "save_last_good",
]


@dataclass(frozen=True)
class RuleContext:
    """What rules may refer to: sensors (with zone and quantity) and writable device points."""

    sensors: Mapping[str, SensorInfo]
    points: Mapping[str, PointLimits]


@dataclass(frozen=True)
class _GoodFile:
    text: str
    parsed: RuleFile
    doc: SourceDoc


ParsedFile = _GoodFile  # one rule file read and validated on its own (its references not yet checked)

EMPTY = (
    "the file holds no rules: it is empty or only comments (a file being written, or emptied by mistake?); "
    "write 'rules: []' to mean no rules on purpose"
)


def parse_rule_file(path: Path, limits: YamlLimits = DEFAULT_LIMITS) -> ParsedFile:
    """Read, parse and validate one rule file within ``limits``; raises :class:`ConfigError`.

    Safe to run in a worker thread: it touches nothing but the file. An empty or comments-only file
    is an error (so a half-written file keeps its last good version), unlike ``rules: []``.
    """
    text = read_text(path, limits)
    doc = load_yaml(path, text=text, limits=limits)
    if doc.data is None:
        raise ConfigError([ErrorItem(str(path), 1, 1, EMPTY)])
    parsed = validate(RuleFile, doc)
    twice = duplicate_ids(doc, parsed.rules)
    if twice:
        raise ConfigError(twice)
    return _GoodFile(text, parsed, doc)


def duplicate_ids(doc: SourceDoc, rules: Sequence[Rule], at: Sequence[int] | None = None) -> list[ErrorItem]:
    """A rule id used twice in one file: the second use is the error (``at`` as for :func:`references`)."""
    first: dict[str, int] = {}
    errors: list[ErrorItem] = []
    for n, rule in enumerate(rules):
        i = at[n] if at is not None else n
        if rule.id in first:
            line = doc.position(("rules", first[rule.id], "id"))[0]
            errors.append(
                doc.error(
                    ("rules", i, "id"),
                    f"rule id '{rule.id}' is used twice in this file (first on line {line}); "
                    f"give each rule its own id, e.g. '{rule.id}-2'",
                )
            )
        else:
            first[rule.id] = i
    return errors


@dataclass
class LoadedRules:
    """The rule set in force, what each file contributed, and what went wrong."""

    ruleset: RuleSet
    errors: list[ErrorItem] = field(default_factory=list)
    kept_previous: list[str] = field(default_factory=list)  # files whose last good version is running
    files: dict[str, _GoodFile] = field(default_factory=dict)
    last_good_error: str | None = None  # copying the good files to the state directory failed (plain words)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def degraded(self) -> str | None:
        """Why the rules in force are not what the rules directory says (``None`` when they are)."""
        if not self.errors:
            return None
        bad = sorted({e.file for e in self.errors})
        kept = [Path(f).name for f in self.kept_previous]
        lost = [Path(f).name for f in bad if f not in self.kept_previous]
        text = f"{len(self.errors)} error(s) in {', '.join(Path(f).name for f in bad)}"
        if kept:
            text += f"; running the last good version of {', '.join(kept)}"
        if lost:
            text += f"; no good version known of {', '.join(lost)} (no rules from it)"
        return text

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(name.encode() + b"\0" + self.files[name].text.encode() + b"\0")
        return h.hexdigest()[:12]


def rule_files(directory: Path) -> list[Path]:
    """The rule files of ``directory``: ``*.yaml`` but hidden ones and directories (a broken link or a
    pipe is listed, so that it is reported and keeps its last good version rather than vanishing)."""
    return sorted(p for p in directory.glob("*.yaml") if not p.is_dir() and not p.name.startswith("."))


def references(
    doc: SourceDoc,
    rf: RuleFile,
    ctx: RuleContext,
    schedules: Mapping[str, Schedule],
    at: Sequence[int] | None = None,
) -> list[ErrorItem]:
    """Sensors, zones, device points and schedules that ``rf``'s rules name but do not exist.

    ``at``: the place in the file of each of ``rf.rules`` (when some rules of the file were left out)."""
    errors: list[ErrorItem] = []
    zones = {(s.zone, s.quantity) for s in ctx.sensors.values()}

    def check_input(loc: tuple[int | str, ...], inp: Input) -> None:
        if inp.sensor is not None and inp.sensor not in ctx.sensors:
            errors.append(
                doc.error(
                    (*loc, "sensor"),
                    f"unknown sensor '{inp.sensor}'" + did_you_mean(inp.sensor, ctx.sensors),
                )
            )
        if inp.zone is not None and inp.quantity is not None and (inp.zone, inp.quantity) not in zones:
            known = sorted({z for z, _ in zones})
            errors.append(
                doc.error(
                    (*loc, "zone"),
                    f"no sensor measures {inp.quantity} in zone '{inp.zone}'" + did_you_mean(inp.zone, known),
                )
            )

    for n, rule in enumerate(rf.rules):
        base: tuple[int | str, ...] = ("rules", at[n] if at is not None else n)
        if rule.target not in ctx.points:
            errors.append(
                doc.error(
                    (*base, "target"),
                    f"unknown device point '{rule.target}'" + did_you_mean(rule.target, ctx.points),
                )
            )
        else:
            lim = ctx.points[rule.target]
            for name, value in (("safe_value", rule.safe_value), ("set", rule.set.value)):
                if value is not None and lim.clamp(value) != value:
                    errors.append(
                        doc.error((*base, name), f"{value:g} is outside the range of {rule.target} ({lim.describe()})")
                    )
            if lim.allowed:
                errors.extend(_enum_errors(doc, base, rule, lim.allowed, lim.describe()))
        for j, cond in enumerate(rule.when):
            loc = (*base, "when", j)
            if cond.is_numeric:
                check_input(loc, cond.input)
            for key in ("above", "below", "off_below", "off_above"):
                t = getattr(cond, key)
                if isinstance(t, Input):
                    check_input((*loc, key), t)
            for key in ("schedule", "outside_schedule", "opens_within"):
                name = getattr(cond, key)
                where: list[int | str] = [*loc, key]
                if cond.opens_within is not None and key == "opens_within":
                    name, where = cond.opens_within.schedule, [*where, "schedule"]
                if isinstance(name, str) and name not in schedules:
                    errors.append(doc.error(tuple(where), f"unknown schedule '{name}'" + did_you_mean(name, schedules)))
        action = rule.set
        for kind in ("curve", "steps"):
            part = getattr(action, kind)
            if part is not None:
                check_input((*base, "set", kind, "input"), part.input)
        if action.circadian is not None and action.circadian.daylight is not None:
            check_input((*base, "set", "circadian", "daylight"), action.circadian.daylight)
    return errors


def _enum_errors(
    doc: SourceDoc, base: tuple[int | str, ...], rule: Rule, allowed: tuple[float, ...], words: str
) -> list[ErrorItem]:
    """A point that takes only some values (an enum) is never given another one: nothing is rounded."""
    errors: list[ErrorItem] = []
    takes = f"{rule.target} takes {words}"
    if rule.set.steps is not None:
        for j, (_, y) in enumerate(rule.set.steps.table):
            if y not in allowed:
                errors.append(doc.error((*base, "set", "steps", "table", j, 1), f"{takes}; {y:g} is not one of them"))
    for kind in ("curve", "circadian"):
        if getattr(rule.set, kind) is not None:
            errors.append(
                doc.error((*base, "set", kind), f"{takes}; a {kind} gives values between them: use steps instead")
            )
    if rule.ramp_per_minute is not None:
        errors.append(
            doc.error((*base, "ramp_per_minute"), f"{takes}; a ramp gives values between them: remove the ramp")
        )
    return errors


def load_rules(
    directory: Path,
    ctx: RuleContext,
    *,
    previous: LoadedRules | None = None,
    last_good_dir: Path | None = None,
    files: Sequence[Path] | None = None,
    limits: YamlLimits = DEFAULT_LIMITS,
    read: Mapping[str, ParsedFile | ConfigError] | None = None,
    established: Collection[str] = (),
) -> LoadedRules:
    """Load every ``*.yaml`` in ``directory`` (or exactly ``files``, for ``lobbyd check FILE...``).

    A file that fails keeps its previous good version (from ``previous``, else from
    ``last_good_dir`` on disk). Good files are copied to ``last_good_dir``. ``read`` holds files
    already parsed (by name; :func:`parse_rule_file` in worker threads, with a time limit); the
    others are parsed here. A missing rules directory keeps every last good file. When two files use one
    rule id, a file already running (in ``previous``, ``last_good_dir`` or ``established``) keeps it.
    """
    errors: list[ErrorItem] = []
    if files is None:
        files = rule_files(directory) if directory.is_dir() else []
        if not directory.is_dir():
            errors.append(ErrorItem(str(directory), 1, 1, "rules directory does not exist or is not a directory"))
    parsed: dict[str, tuple[str, SourceDoc, RuleFile]] = {}
    failed: list[str] = []
    if not directory.is_dir() and last_good_dir is not None and last_good_dir.is_dir():
        failed += [str(directory / p.name) for p in rule_files(last_good_dir)]
    for path in files:
        try:
            got = read.get(str(path)) if read is not None else None
            if isinstance(got, ConfigError):
                raise got
            pf = got if got is not None else parse_rule_file(path, limits)
        except ConfigError as exc:
            errors.extend(exc.errors)
            failed.append(str(path))
            continue
        parsed[str(path)] = (pf.text, pf.doc, pf.parsed)

    # Schedules are shared by all files; duplicates are an error in the later file (by name).
    schedules: dict[str, Schedule] = {}
    for _name, (_, doc, rf) in sorted(parsed.items()):
        for sname, sched in rf.schedules.items():
            if sname in schedules:
                errors.append(doc.error(("schedules", sname), f"schedule '{sname}' is defined twice"))
                continue
            schedules[sname] = sched

    # A rule id used in two files: the file the daemon already ran keeps it, the new or edited one is blamed.
    known = set(established) | (set(previous.files) if previous is not None else set())
    if last_good_dir is not None and last_good_dir.is_dir():
        known |= {str(directory / p.name) for p in rule_files(last_good_dir)}
    good: dict[str, _GoodFile] = {}
    seen_ids: dict[str, tuple[str, SourceDoc, int]] = {}
    for name, (text, doc, rf) in sorted(parsed.items(), key=lambda kv: (kv[0] not in known, kv[0])):
        problems = references(doc, rf, ctx, schedules)
        for i, rule in enumerate(rf.rules):
            if rule.id in seen_ids:
                other, odoc, j = seen_ids[rule.id]
                line, col = odoc.position(("rules", j, "id"))
                problems.append(
                    doc.error(
                        ("rules", i, "id"),
                        f"rule id '{rule.id}' is already used in {other}:{line}:{col}; "
                        f"give this rule another id, e.g. '{rule.id}-2'",
                    )
                )
        if problems:
            errors.extend(problems)
            failed.append(name)
            continue
        for i, rule in enumerate(rf.rules):
            seen_ids[rule.id] = (name, doc, i)
        good[name] = _GoodFile(text, rf, doc)

    kept: list[str] = []
    for name in failed:
        old = previous.files.get(name) if previous is not None else None
        if old is None and last_good_dir is not None:
            saved = last_good_dir / Path(name).name
            if saved.is_file():
                try:
                    pf = parse_rule_file(saved, limits)
                    if not references(pf.doc, pf.parsed, ctx, schedules):
                        old = pf
                except ConfigError:
                    old = None
        if old is not None and not any(r.id in seen_ids for r in old.parsed.rules):
            good[name] = old
            kept.append(name)
            for i, rule in enumerate(old.parsed.rules):
                seen_ids[rule.id] = (name, old.doc, i)
            for sname, sched in old.parsed.schedules.items():
                schedules.setdefault(sname, sched)

    save_error = None
    if last_good_dir is not None:
        try:
            _save_last_good(last_good_dir, directory, good, kept, failed)
        except OSError as exc:  # a full or read-only disk: the rules run, their copy waits for the next load
            save_error = describe(exc, last_good_dir)

    rules: list[Rule] = [r for gf in good.values() for r in gf.parsed.rules]
    return LoadedRules(RuleSet(tuple(rules), schedules), errors, kept, good, last_good_error=save_error)


def save_last_good(rules: LoadedRules, last_good_dir: Path, directory: Path) -> LoadedRules:
    """Copy the good files of ``rules`` to ``last_good_dir`` again (their copy failed: a full or read-only
    disk); the same rules, with ``last_good_error`` as it is now."""
    try:
        _save_last_good(last_good_dir, directory, rules.files, rules.kept_previous, [e.file for e in rules.errors])
    except OSError as exc:
        return dataclasses.replace(rules, last_good_error=describe(exc, last_good_dir))
    return dataclasses.replace(rules, last_good_error=None)


def _save_last_good(
    last_good_dir: Path, directory: Path, good: Mapping[str, _GoodFile], kept: Sequence[str], failed: Sequence[str]
) -> None:
    """Copy the good files to ``last_good_dir`` (atomically each) and remove copies of deleted files."""
    last_good_dir.mkdir(parents=True, exist_ok=True)
    present = {Path(n).name for n in good}
    for name, gf in good.items():
        if name in kept:
            continue
        target = last_good_dir / Path(name).name
        tmp = target.with_suffix(".tmp")
        try:
            tmp.write_text(gf.text, encoding="utf-8")
            tmp.replace(target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            exc.filename = str(target)  # the copy that could not be saved, for the message
            raise
    for stale in last_good_dir.glob("*.yaml"):
        if stale.name not in present and str(directory / stale.name) not in failed:
            stale.unlink(missing_ok=True)
    shutil.rmtree(last_good_dir / "__pycache__", ignore_errors=True)
