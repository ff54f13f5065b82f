"""``lobbyd check`` on a corpus of broken rule files, as facilities staff get them wrong.

Each file in ``tests/rules_corpus/`` says in its header what ``check`` must answer:
``# expect [@line:col]: fragment`` for an error, ``# warn [@line:col]: fragment`` for a warning,
``# ok`` for a file that must pass (`` … `` in a fragment stands for any text). Every line of the
answer must be one of them (nothing more, nothing less), carry file:line:column, and contain no
library phrasing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.reload import LAST_GOOD_DIR
from daemon.rules.load import load_rules, rule_files

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "rules_corpus"
BANNED = (
    "valid dictionary",
    "instance of",
    "Input should be",
    "ScannerError",
    "ParserError",
    "mapping values",
    "pydantic",
    "ruamel",
    "Traceback",
    "Value error",
    "function-before",
    "block mapping start",
    "<block end>",
    "while scanning",
    "cannot start any token",
    "errors.pydantic.dev",
    "Field required",
    "Extra inputs",
    "type=",
)
LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<warn>warning: )?(?P<msg>.*)$")
HEADER = re.compile(r"^# (?P<kind>expect|warn)(?: @(?P<line>\d+):(?P<col>\d+))?: (?P<text>.*)$")
#: Files made by the test: an empty file, and one over the size limit (not kept in the repository).
GENERATED = {
    "empty.yaml": (b"", ["expect @1:1: the file holds no rules: it is empty or only comments"]),
    "too-large.yaml": (
        b"rules: []\n" + b"# padding to pass the size limit\n" * 40_000,
        ["expect @1:1: file too large: 1.3 MiB (1320010 bytes); at most 1.0 MiB (1048576 bytes) is read"],
    ),
}


@dataclass(frozen=True)
class Expected:
    kind: str  # "expect" (an error) or "warn"
    text: str
    at: tuple[int, int] | None


def expectations(path: Path) -> list[Expected]:
    if path.name in GENERATED:
        lines = ["# " + x for x in GENERATED[path.name][1]]
    else:
        lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    found = []
    for row in lines:
        m = HEADER.match(row)
        if m:
            at = (int(m["line"]), int(m["col"])) if m["line"] else None
            found.append(Expected(m["kind"], m["text"], at))
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The shipped config and rules, on a site with daylight saving; returns (config file, corpus copy)."""
    tmp = tmp_path_factory.mktemp("site")
    shutil.copytree(ROOT / "config", tmp / "config", ignore=shutil.ignore_patterns("schema"))
    shutil.copytree(ROOT / "rules", tmp / "rules", ignore=shutil.ignore_patterns("*.md"))
    config = tmp / "config" / "lobbyd.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("timezone: Asia/Shanghai", "timezone: Europe/Berlin"), encoding="utf-8")
    corpus = tmp / "corpus"
    shutil.copytree(CORPUS, corpus)
    for name, (content, _) in GENERATED.items():
        (corpus / name).write_bytes(content)
    return config, corpus


def corpus_files() -> list[str]:
    return sorted([p.name for p in CORPUS.glob("*.yaml")] + list(GENERATED))


def assert_answers(out: str, files: dict[Path, list[Expected]]) -> None:
    """Every answer line is positioned and expected; every expectation is answered exactly once."""
    for phrase in BANNED:
        assert phrase not in out, f"library phrasing {phrase!r} in:\n{out}"
    got: dict[str, list[tuple[str, int, int, str]]] = {str(p): [] for p in files}
    for row in out.splitlines()[:-1]:  # the last line is the summary
        m = LINE.match(row)
        assert m, f"not file:line:column: {row!r}"
        assert m["file"] in got, f"a message about another file: {row}"
        kind = "warn" if m["warn"] else "expect"
        got[m["file"]].append((kind, int(m["line"]), int(m["col"]), m["msg"]))
    for path, wanted in files.items():
        answers = got[str(path)]
        for exp in wanted:
            hits = [a for a in answers if a[0] == exp.kind and all(part in a[3] for part in exp.text.split(" … "))]
            assert len(hits) == 1, f"{path.name}: {exp.kind} {exp.text!r} answered {len(hits)}× in:\n{out}"
            if exp.at is not None:
                assert hits[0][1:3] == exp.at, f"{path.name}: {exp.text!r} at {hits[0][1:3]}, expected {exp.at}"
        assert len(answers) == len(wanted), f"{path.name}: {len(answers)} answers for {len(wanted)} expected:\n{out}"


def test_the_corpus_is_large_enough_and_covers_each_kind() -> None:
    names = corpus_files()
    assert len(names) >= 40
    kinds = {e.kind for n in names for e in expectations(CORPUS / n)}
    assert kinds == {"expect", "warn"}


@pytest.mark.parametrize("name", corpus_files())
def test_check_answers_each_broken_file_in_plain_words(
    name: str, site: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, corpus = site
    path = (corpus / name).resolve()
    wanted = expectations(path)
    code = main(["check", "--config", str(config), str(path)])
    out = capsys.readouterr().out
    assert_answers(out, {path: wanted})
    errors = [e for e in wanted if e.kind == "expect"]
    assert code == (2 if errors else 0), out
    if errors:
        assert out.splitlines()[-1] == f"{len(errors)} error(s) in 1 file(s); nothing was changed"


@pytest.fixture(scope="module")
def one_run(site: tuple[Path, Path]) -> subprocess.CompletedProcess[str]:
    """``python -m daemon check`` over the whole corpus directory at once."""
    config, corpus = site
    return subprocess.run(
        [sys.executable, "-m", "daemon", "check", "--config", str(config), str(corpus)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def test_one_run_reports_every_problem_of_every_file(
    site: tuple[Path, Path], one_run: subprocess.CompletedProcess[str]
) -> None:
    """The real command over the whole corpus at once: all problems of all files, not one round at a time."""
    _, corpus = site
    done = one_run
    assert done.returncode == 2, done.stderr
    assert re.fullmatch(r"(lobbyd: config .* \(from [^)]*\)\n)?", done.stderr), done.stderr  # which config, only
    files = {(corpus / n).resolve(): expectations(corpus / n) for n in corpus_files()}
    assert_answers(done.stdout, files)
    errors = sum(1 for w in files.values() for e in w if e.kind == "expect")
    bad = sum(1 for w in files.values() if any(e.kind == "expect" for e in w))
    assert done.stdout.splitlines()[-1] == f"{errors} error(s) in {bad} file(s); nothing was changed"


def test_the_staff_guide_quotes_real_messages(
    site: tuple[Path, Path], one_run: subprocess.CompletedProcess[str]
) -> None:
    """Each message rules/README.md quotes in its list of common mistakes is what check says today."""
    _, corpus = site
    guide = (ROOT / "rules" / "README.md").read_text(encoding="utf-8")
    section = guide.split("## The ten most common mistakes", 1)[1].split("**Completion in the editor.**", 1)[0]
    quoted = [row.strip() for row in section.splitlines() if LINE.match(row.strip())]
    assert len(quoted) >= 10
    said = {row.replace(f"{corpus.resolve()}/", "") for row in one_run.stdout.splitlines()}
    for row in quoted:
        assert row in said, f"rules/README.md quotes a message check no longer gives: {row}"


def test_a_new_file_reusing_a_shipped_id_is_blamed_and_the_shipped_file_kept(tmp_path: Path) -> None:
    """Live reload and restart: the file that was running keeps its rules; the new file is refused."""
    from daemon.config import load_config

    shutil.copytree(ROOT / "config", tmp_path / "config", ignore=shutil.ignore_patterns("schema"))
    shutil.copytree(ROOT / "rules", tmp_path / "rules", ignore=shutil.ignore_patterns("*.md"))
    loaded = load_config(tmp_path / "config" / "lobbyd.yaml")
    rules_dir, last_good = loaded.rules_dir, tmp_path / LAST_GOOD_DIR
    first = load_rules(rules_dir, loaded.rule_context(), last_good_dir=last_good)
    assert first.ok
    shipped = {r.id for r in first.ruleset.rules}
    new = rules_dir / "aaa-new.yaml"  # sorts before air-quality.yaml
    shutil.copy(CORPUS / "duplicate-id-across-files.yaml", new)

    for previous in (first, None):  # a live reload, then a restart (known from the last good copies)
        again = load_rules(rules_dir, loaded.rule_context(), previous=previous, last_good_dir=last_good)
        assert [Path(e.file).name for e in again.errors] == ["aaa-new.yaml"]
        assert "rule id 'pm25-high' is already used in" in again.errors[0].message
        assert {r.id for r in again.ruleset.rules} == shipped
        assert again.kept_previous == []
        assert sorted(p.name for p in rule_files(last_good)) == ["air-quality.yaml", "lighting.yaml", "schedules.yaml"]
