"""A data source as the Calibration pane edits it: what each kind needs, what a file holds,
every typed value checked in words, and the overrides it makes (no Textual here).

The checks read only what a field needs: an ``.npz``'s array headers (names, shapes,
dtypes; ``allow_pickle=False``, no array data), a folder's first level. The engine checks
again when the job runs (engine.data); these are here so a bad value is said beside its
field before it becomes an override, never sent as something else.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SPLITS = ("calibration", "test", "train", "validation")
KINDS = ("synthetic", "npz", "npy_dir", "images")
#: The fields each kind reads; the others are left as the config has them.
USES: dict[str, tuple[str, ...]] = {
    "synthetic": ("generator", "count", "seed"),
    "npz": ("path", "x", "y", "raw"),
    "npy_dir": ("path", "raw"),
    "images": ("path",),
}
#: What a fresh table has (engine.config.DataSource's defaults).
DEFAULTS: dict[str, Any] = {"kind": "synthetic", "path": "", "x": "x", "y": "y", "raw": False,
                            "generator": "", "count": 0, "seed": 0}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")  # as engine.data reads
_SYSTEM = frozenset({"thumbs.db", "desktop.ini", "__macosx"})


@dataclass(frozen=True)
class ArrayInfo:
    """One array of an .npz, from its header."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    #: numpy's kind letter: f float, i/u integer, b bool (inputs); O, U, S… cannot be.
    kind: str = "f"

    @property
    def text(self) -> str:
        dims = "×".join(str(d) for d in self.shape) or "scalar"
        return f"{self.name}  {dims} {self.dtype}"


class SourceError(ValueError):
    """A file cannot be read as the kind says; the message is for beside the Path field."""


def npz_arrays(path: str | Path) -> list[ArrayInfo]:
    """The arrays of an .npz (names, shapes, dtypes) from their headers; SourceError if the
    file is not a readable .npz."""
    import numpy as np  # noqa: PLC0415 - read on demand, never before the first paint

    p = Path(path)
    out: list[ArrayInfo] = []
    try:
        with zipfile.ZipFile(p) as zf:
            for member in zf.namelist():
                if not member.endswith(".npy"):
                    continue
                with zf.open(member) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                out.append(ArrayInfo(member[:-4], tuple(shape), str(dtype), dtype.kind))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise SourceError("is not a readable .npz file (write it with numpy.savez)") from exc
    if not out:
        raise SourceError("holds no arrays (write them with numpy.savez)")
    return out


def _junk(name: str) -> bool:
    return name.startswith(".") or name.lower() in _SYSTEM


def class_folders(root: Path) -> list[str]:
    """An image folder's class sub-folders, sorted (as engine.data labels them)."""
    return sorted(d.name for d in root.iterdir() if d.is_dir() and not _junk(d.name))


def _has_images(folder: Path) -> bool:
    return any(f.suffix.lower() in IMAGE_SUFFIXES and not _junk(f.name)
               for f in folder.iterdir() if f.is_file())


def check_path(kind: str, text: str) -> tuple[str, str, list[ArrayInfo]]:
    """(problem, note, arrays) for a Path field: the problem in words ("" when fine), what
    the file or folder holds, and an .npz's arrays."""
    if not text.strip():
        return "choose a file or folder (Browse…) or type a path", "", []
    p = Path(os.path.expanduser(text.strip()))
    if not p.exists():
        return f"not found: {p}", "", []
    try:
        if kind == "npz":
            if p.is_dir():
                return "is a folder; an .npz is a file (or choose Kind npy-dir or images)", "", []
            arrays = npz_arrays(p)
            return "", f"{len(arrays)} arrays", arrays
        if p.is_file():
            want = "folder of .npy files" if kind == "npy_dir" else "folder of images"
            return f"is a file; {kind.replace('_', '-')} reads a {want} (or choose Kind npz)", "", []
        if kind == "npy_dir":
            n = sum(1 for f in p.glob("*.npy") if f.name != "labels.npy")
            if not n:
                return "holds no .npy files (one array per item, e.g. calibration_data_0.npy)", "", []
            labels = "labels: labels.npy" if (p / "labels.npy").is_file() else \
                "labels: none (no labels.npy in the folder)"
            return "", f"{n} .npy items; {labels}", []
        classes = class_folders(p)
        if classes:
            if not any(_has_images(p / c) for c in classes):
                return "its class sub-folders hold no images (.png, .jpg, .jpeg, .bmp)", "", []
            shown = ", ".join(classes[:5]) + (", …" if len(classes) > 5 else "")
            return "", f"labels: {len(classes)} class sub-folders ({shown})", []
        if not _has_images(p):
            return "holds no images (.png, .jpg, .jpeg, .bmp)", "", []
        return "", "labels: none (no class sub-folders)", []
    except SourceError as exc:
        return str(exc), "", []
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})", "", []


def _whole(text: str, least: int | None) -> tuple[int | None, str]:
    try:
        n = int(text.strip())
    except ValueError:
        return None, f"{text.strip() or 'nothing'!r} is not a whole number" if text.strip() \
            else "is empty: type a whole number"
    if least is not None and n < least:
        return None, f"must be at least {least}, got {n}"
    return n, ""


def check(split: str, values: dict[str, Any], arrays: list[ArrayInfo],
          generators: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, str]]:
    """A split's typed values → (the source's values, problems by field).

    ``values``: kind, path (text), x and y (array names, None when none is chosen), raw,
    generator (None when none), count and seed (text). Only the fields the kind uses are
    checked and returned.
    """
    kind = values["kind"]
    out: dict[str, Any] = {"kind": kind}
    bad: dict[str, str] = {}
    names = {a.name: a for a in arrays}
    for field in USES[kind]:
        v = values.get(field)
        if field == "path":
            out["path"] = str(Path(os.path.expanduser(str(v or "").strip())).resolve()) \
                if str(v or "").strip() else ""
        elif field == "x":
            if not v:
                bad["x"] = "choose the input array"
            elif names and v not in names:
                bad["x"] = f"no array {v!r} in the file (it holds: {', '.join(names)})"
            elif v in names and not names[v].shape:
                bad["x"] = f"{v!r} is a single number, not items"
            elif v in names and names[v].kind not in "fiub":
                bad["x"] = f"{v!r} holds {names[v].dtype}, which cannot be a model input"
            out["x"] = v or ""
        elif field == "y":
            y = v or ""
            if y and names and y not in names:
                bad["y"] = f"no array {y!r} in the file (it holds: {', '.join(names)})"
            elif y and y in names:
                ya, xa = names[y], names.get(values.get("x") or "")
                if not ya.shape:
                    bad["y"] = f"{y!r} is a single number, not one label per item"
                elif xa is not None and xa.shape and ya.shape[0] != xa.shape[0]:
                    bad["y"] = f"{ya.shape[0]} labels for {xa.shape[0]} inputs in {xa.name!r}"
            out["y"] = y
        elif field == "raw":
            out["raw"] = bool(v)
        elif field == "generator":
            if not v:
                bad["generator"] = "choose a generator"
            elif v not in generators:
                bad["generator"] = f"no generator {v!r} (there are: {', '.join(generators)})"
            out["generator"] = v or ""
        elif field in ("count", "seed"):
            n, why = _whole(str(v if v is not None else ""), 1 if field == "count" else None)
            if why:
                bad[field] = why
            out[field] = n
    return out, bad


def overrides(split: str, source: dict[str, Any], base: dict[str, Any] | None) -> dict[str, Any]:
    """The ``--set`` keys that make ``data.SPLIT`` the checked ``source`` when the config
    has ``base`` there (None: no such table), only what differs."""
    key = f"data.{split}"
    have = {**DEFAULTS, **(base or {})} if base is not None else {}
    out: dict[str, Any] = {}
    for field, value in source.items():
        if base is None or have.get(field) != value:
            out[f"{key}.{field}"] = value
    if source["kind"] == "synthetic":
        if base is not None and have.get("path"):
            out[f"{key}.path"] = ""  # a synthetic source refuses a path: the file is dropped
        if base is None:
            out[f"{key}.split"] = split  # the generator's own split for this one
    return out


def model_ready(source: dict[str, Any]) -> bool:
    """Whether a source goes to the model as stored (no preprocessing)."""
    return source.get("kind") in ("npz", "npy_dir") and not source.get("raw")
