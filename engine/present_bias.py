"""The bias correction in words (engine.present re-exports them: one wording for the CLI,
report.md and the TUI)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .report import Report


def _db(v: float | None) -> str:
    return "exact" if v is None else f"{v:.1f} dB"


def bias_lines(rep: Report) -> list[str]:
    """What the sequential bias correction did: the outputs' SQNR before → after on the
    held-out calibration slice (which chose) and on the test set, and the model kept."""
    bc = rep.bias_correction
    if bc is None:
        return _bias_suggestion(rep)
    int8 = _int8_file(rep)
    if bc.error:
        return [f"Bias correction failed ({bc.error}): {int8} is the converter's model"]
    where = (f"{bc.heldout_items} held-out calibration items" if bc.heldout_items
             else f"the {bc.fit_items} calibration items it fitted on (too few to hold some out)")
    kept = (f"kept the corrected model ({int8}; the converter's is "
            f"{bc.other_path})" if bc.corrected else
            f"kept the converter's model: the correction did not help on {where} "
            f"(the corrected one is {bc.other_path})")
    lines = [f"Bias correction ({bc.method}, {len(bc.layers)} layers, fitted on "
             f"{bc.fit_items} calibration items): {kept}"]
    for o in bc.outputs:
        cal, test = o.calibration, o.test
        parts = []
        if cal is not None:
            parts.append(f"{_db(cal.before_db)} → {_db(cal.after_db)} on {where}")
        if test is not None:
            parts.append(f"{_db(test.before_db)} → {_db(test.after_db)} on "
                         f"{bc.test_items} test items")
        lines.append(f"output '{o.name}' SQNR: " + "; ".join(parts))
    if bc.skipped:
        lines.append(f"{len(bc.skipped)} conv/FC layers left as they were: "
                     + "; ".join(f"{s.name} ({s.why})" for s in bc.skipped[:3]))
    return lines


def equalize_lines(rep: Report) -> list[str]:
    """What cross-layer equalization did: pairs, float drift, the outputs' SQNR of the
    plain → equalized INT8 on the held-out calibration slice (which chose) and the test set."""
    eq = rep.equalization
    if eq is None:
        return []
    int8 = _int8_file(rep)
    drift = f"float outputs moved by {max(eq.float_diff):.1e}" if eq.float_diff else ""
    if eq.error:
        return [f"Equalization not used ({eq.error}): {int8} is the plain model"]
    if not eq.pairs:
        return [f"Equalization found no pair of layers to balance ({len(eq.skipped)} conv/FC "
                f"layers skipped): {int8} is the plain model"]
    kept = (f"kept the equalized model ({int8}; the plain one is {eq.other_path})"
            if eq.kept == "equalized" else
            f"kept the plain model: equalizing did not help on {eq.heldout_items} held-out "
            f"calibration items (the equalized one is {eq.other_path})")
    lines = [f"Equalization ({len(eq.pairs)} layer pairs, {drift}): {kept}"]
    for o in eq.outputs:
        parts = [f"{_db(p.before_db)} → {_db(p.after_db)} on {what}" for p, what in (
            (o.calibration, f"{eq.heldout_items} held-out calibration items"),
            (o.test, f"{eq.test_items} test items")) if p is not None]
        lines.append(f"output '{o.name}' SQNR, plain → equalized: " + "; ".join(parts))
    if eq.skipped:
        lines.append(f"{len(eq.skipped)} conv/FC layers start no pair: "
                     + "; ".join(f"{s.name} ({s.why})" for s in eq.skipped[:3]))
    return lines


def _int8_file(rep: Report) -> str:
    """The INT8 stage's file name: int8.tflite, or int8.onnx for an ONNX model."""
    path = str(rep.stage("int8").path or "")
    return "int8.onnx" if path.endswith(".onnx") else "int8.tflite"


def _bias_suggestion(rep: Report) -> list[str]:
    """Off (the default) and a PTQ INT8 model whose verdict fails on fidelity: say what
    may help."""
    v = rep.verdict
    if (v is None or v.passed or v.unit != "dB" or rep.method != "ptq"
            or rep.setting("quantization.bias_correction", "off") != "off"
            or not str(rep.stage("int8").path or "").endswith((".tflite", ".onnx"))):
        return []
    return [f"INT8 keeps '{v.output}' at {_db(v.int8)} SQNR: try quantization.bias_correction "
            "= \"sequential\" (on ST's MobileNet v2 person it took the test photos from 6.2 to "
            "12.9 dB); the run keeps the corrected model only if it is closer to FP32 on held-out "
            "calibration items"]
