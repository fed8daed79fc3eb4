"""Long lines wrap at spaces and, inside a path, after its separators, every character kept."""

from __future__ import annotations

from tui.format import wrap_at_separators


def test_a_path_breaks_after_a_separator_and_pastes_back_together() -> None:
    line = ("artq run sensor.toml --set data.calibration.path="
            "/home/someone/projects/sensor/data/calibration_set_2026.npz --set calibration.samples=300")
    out = wrap_at_separators(line, 40).split("\n")
    assert all(len(s) <= 40 for s in out)
    assert out == ["artq run sensor.toml --set",
                   "data.calibration.path=/home/someone/",
                   "projects/sensor/data/",
                   "calibration_set_2026.npz --set",
                   "calibration.samples=300"]
    # Lines that break inside the path end on a separator; pasted together, it is whole.
    assert "".join(out[1:4]).startswith("data.calibration.path=/home/someone/projects/sensor/"
                                        "data/calibration_set_2026.npz")


def test_short_lines_are_untouched_and_a_piece_wider_than_a_line_is_cut_inside() -> None:
    assert wrap_at_separators("a short line", 40) == "a short line"
    assert wrap_at_separators("two\nlines", 40) == "two\nlines"
    out = wrap_at_separators("/x/" + "n" * 25, 10).split("\n")
    assert out == ["/x/", "n" * 10, "n" * 10, "n" * 5]
    assert wrap_at_separators(r"C:\Users\me\data\calibration.npz", 12).split("\n") == [
        "C:\\Users\\me\\", "data\\", "calibration.", "npz"]
