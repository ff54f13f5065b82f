"""python -m simulators.docs rewrites the marked figures of a document, and only them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulators.docs import BEGIN, END, main, rewrite

FIG = {
    "variant": "lobbyd", "open_h": 9.0, "pm25_ok_pct": 97.5, "plant_limited_min": 12.0,
    "pm25_ok_reachable_pct": 99.5, "writes_per_device_worst_hour": {"fresh_air": 3, "lights": 17},
    "writes_per_device_mean_per_h": {"fresh_air": 1.0, "lights": 5.0}, "cct_in_band_pct": 0.5,
    "cct_max_change_per_min_k": 1332.0, "cct_reversals_worst_hour": 9, "fan_kwh": 1.23,
    "dropped_random": 1, "dropped_burst": 0, "lost_broker": 0,
}  # fmt: skip
REPORT = {
    "scenarios": {"demo-day": {"runs": {"lobbyd": FIG}, "fan_kwh_vs_naive": 0.9, "fan_kwh_vs_fixed": None}},
    "failed_targets": ["demo-day: 17 writes to lights in one hour (goal at most 6)"],
}


def test_the_marked_block_gets_the_reports_table_and_the_rest_stays() -> None:
    doc = f"intro\n{BEGIN}\nold figures\n{END}\noutro\n"
    new = rewrite(doc, REPORT, "a test")
    assert new.startswith("intro\n") and new.endswith(f"{END}\noutro\n")
    assert "old figures" not in new
    assert "demo-day" in new and " 97.5" in new and "1332" in new and "0.90" in new
    assert "17 writes to lights" in new
    assert rewrite(new, REPORT, "a test") == new  # idempotent


def test_a_document_without_marks_is_refused_in_words() -> None:
    with pytest.raises(ValueError, match="no <!-- figures:begin -->"):
        rewrite("no marks here\n", REPORT, "a test")


def test_the_command_reads_a_report_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc, rep = tmp_path / "d.md", tmp_path / "report.json"
    doc.write_text(f"{BEGIN}\n{END}\n")
    rep.write_text(json.dumps(REPORT))
    assert main(["--report", str(rep), "--doc", str(doc)]) == 0
    assert "demo-day" in doc.read_text()
    rep.write_text("{not json")
    assert main(["--report", str(rep), "--doc", str(doc)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_the_shipped_simulation_doc_has_the_marks() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "simulation.md").read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1


def test_the_summary_picture_is_drawn_from_a_report(tmp_path: Path) -> None:
    from simulators.summary_plot import plot_summary

    png = plot_summary(REPORT, tmp_path / "summary.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
