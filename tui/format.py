"""Plain-text formatting shared by the screens: numbers, sizes, bars, small charts.

Everything returns strings, never colour alone: a bar carries its numbers, a state its word.
Pure functions, so tests check them without an app.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Numbers as every face writes them (the CLI and report.md too).
from engine.present import fixed, pct, points, size  # noqa: F401

BLOCKS = " ▏▎▍▌▋▊▉█"


def count(n: Any, sig: int = 0) -> str:
    """1234567 → '1.23 M' (or '1.23M' to ``sig`` significant digits); MACs, parameters."""
    if n is None:
        return "—"
    n = float(n)
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.{sig}g}{unit}" if sig else f"{n / div:.2f} {unit}"
    return f"{n:.0f}"


def num(v: Any, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def seconds(s: float | None) -> str:
    if s is None:
        return "—"
    if s < 60:
        return f"{s:.1f} s"
    m, s = divmod(int(round(s)), 60)
    return f"{m}:{s:02d} min" if m < 60 else f"{m // 60}:{m % 60:02d} h"


def shape(s: Any) -> str:
    if not s:
        return "?"
    return "×".join("?" if d is None else str(d) for d in s)


def bar(frac: float, width: int) -> str:
    """A horizontal bar of ``width`` cells filled to ``frac`` (eighth-cell resolution)."""
    frac = min(max(frac, 0.0), 1.0)
    eighths = int(round(frac * width * 8))
    full, rest = divmod(eighths, 8)
    out = "█" * full + (BLOCKS[rest] if rest else "")
    return out + "·" * (width - len(out))


def pool_line(name: str, used: int, total: int, width: int = 24) -> str:
    """'npuRAM3  ████···  32.0 KiB of 448.0 KiB   7 %' — the numbers say it, the bar shows it."""
    frac = used / total if total else 0.0
    over = " OVER" if total and used > total else ""
    return f"{name:<9} {bar(frac, width)} {size(used):>10} of {size(total):<10} {100 * frac:3.0f} %{over}"


def line_chart(values: Sequence[float | None], width: int, height: int, marker: str = "●") -> list[str]:
    """A small dot chart with y labels; one column group per point (epochs are few)."""
    pts = [v for v in values if v is not None]
    if not pts:
        return ["(no data yet)"]
    lo, hi = min(pts), max(pts)
    span = hi - lo or (abs(hi) or 1.0)
    label_w = 9
    plot_w = max(width - label_w - 1, len(values))
    step = max(plot_w // max(len(values), 1), 1)
    grid = [[" "] * (step * len(values)) for _ in range(height)]
    for i, v in enumerate(values):
        if v is None:
            continue
        row = height - 1 - int(round((v - lo) / span * (height - 1)))
        grid[row][i * step + step // 2] = marker
    lines = []
    for r, cells in enumerate(grid):
        label = f"{hi:.4g}" if r == 0 else (f"{lo:.4g}" if r == height - 1 else "")
        lines.append(f"{label:>{label_w}}│" + "".join(cells))
    axis = "".join(str(i + 1).center(step) if step >= len(str(i + 1)) else "·" * step
                   for i in range(len(values)))
    lines.append(" " * label_w + "└" + "─" * len(axis))
    lines.append(" " * (label_w + 1) + axis)
    return lines


def hbar_chart(rows: Sequence[tuple[str, float | None, str]], width: int) -> list[str]:
    """Labelled horizontal bars: (label, value, shown text); bars scale to the largest value."""
    vals = [abs(v) for _, v, _ in rows if v is not None]
    top = max(vals) if vals else 1.0
    label_w = min(max((len(r[0]) for r in rows), default=4), 28)
    text_w = max((len(r[2]) for r in rows), default=4)
    bar_w = max(width - label_w - text_w - 3, 5)
    out = []
    for label, v, text in rows:
        b = bar(abs(v) / top if v is not None and top else 0.0, bar_w)
        out.append(f"{label[:label_w]:<{label_w}} {b} {text:>{text_w}}")
    return out


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} → {'a.b': 1}; lists stay values."""
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict):
                out.update(flatten(v, key))
            else:
                out[key] = v
    return out


_SEPARATORS = "/\\=,"


def _pieces(word: str) -> list[str]:
    """A word cut after each separator: ``/a/b.npz`` → ``/``, ``a/``, ``b.npz``."""
    out, cur = [], ""
    for ch in word:
        cur += ch
        if ch in _SEPARATORS:
            out.append(cur)
            cur = ""
    return [*out, cur] if cur else out


def wrap_at_separators(text: str, width: int) -> str:
    """``text`` in lines of at most ``width`` columns, every character kept: lines break at
    spaces, and a word longer than the room left (a path, ``key=/a/path``) after a
    separator (``/``, ``\\``, ``=``, ``,``), so a path wraps where it can be read and pasted
    back together; only a piece wider than a whole line is cut inside."""
    if width < 2:
        return text
    lines: list[str] = []
    for para in text.split("\n"):
        line = ""
        for token in [t for t in _split_spaces(para) if t]:
            if len(line) + len(token) <= width:
                line += token
                continue
            if token.isspace():  # a break: the space is not carried to the next line
                lines.append(line.rstrip())
                line = ""
                continue
            if len(token) <= width:
                lines.append(line.rstrip())
                line = token
                continue
            for piece in _pieces(token):
                while len(piece) > width:
                    if line:
                        lines.append(line.rstrip())
                        line = ""
                    lines.append(piece[:width])
                    piece = piece[width:]
                if len(line) + len(piece) > width:
                    lines.append(line.rstrip())
                    line = ""
                line += piece
        lines.append(line)
    return "\n".join(lines)


def _split_spaces(text: str) -> list[str]:
    import re  # noqa: PLC0415 - once, on the first long line

    return re.split(r"(\s+)", text)
