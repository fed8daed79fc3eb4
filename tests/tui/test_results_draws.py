"""The Results pane tells calibration draws in engine.present's words, as the CLI does."""

from __future__ import annotations

from engine import present as say
from engine.report import Report
from tui.panes.results import qat_text

FIG = {"metric": "top1", "output": "probs", "unit": "fraction", "items": 300, "mean": 0.95,
       "min": 0.94, "max": 0.96, "std": 0.01}
DRAWS = {"count": 2, "keep": "best", "kept": 1, "heldout": FIG, "test": FIG,
         "per_draw": [{"index": i, "seed": 10 + i, "items": 50, "sha256": "a", "size_bytes": 1,
                       "heldout": 0.94 + i / 50, "test": 0.95} for i in range(2)]}


def test_results_pane_shows_the_draws_in_the_one_wording() -> None:
    rep = Report.from_dict({"schema": "artq.report/1", "status": "ok",
                            "stages": {"int8": {"path": "int8.tflite", "draws": DRAWS}}})
    text = qat_text(rep)
    assert text.splitlines() == say.draws_lines(rep)
    assert "kept draw 1, seed 11 (best on the held-out calibration slice)" in text
    assert "draw 1 (seed 11, 50 items): held-out 96.00 %, test 95.00 % (kept)" in text
    assert qat_text(Report.from_dict({"schema": "artq.report/1", "stages": {}})) == ""
