"""What the variants of a sweep share, computed once: a cache keyed by what each item
depends on.

Variants of one config differ in a few keys (calibration samples, granularity, ...), but
most of a job does not depend on them: rendering synthetic data, exporting the model,
converting and evaluating FP32 and FP16 (the FP32 outputs are the reference every stage is
compared with). Each of those is an *entry* named by a hash of its inputs: the model
file's bytes, the relevant config tables, artq's and TensorFlow's versions. An entry is
written to a temporary folder and renamed when complete, under an exclusive file lock, so
two variants running at once compute it once: the second waits, then reads.

No TensorFlow here; a backend adopts the shared export (``Backend.adopt_export``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .data import RawData
from .labels import load_labels, save_labels


def _tf_version() -> str:
    try:
        return metadata.version("tensorflow")
    except metadata.PackageNotFoundError:
        return "?"


def file_digest(path: str | Path) -> str:
    """sha256 of a file, or of every file in a folder (a SavedModel), names included."""
    p = Path(path)
    h = hashlib.sha256()
    files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    for f in files:
        h.update(str(f.relative_to(p) if p.is_dir() else f.name).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def key(*parts: Any) -> str:
    """A short stable hash of JSON-able parts (plus artq's and TF's versions)."""
    blob = json.dumps([__version__, _tf_version(), *parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Entry:
    root: Path

    @property
    def complete(self) -> bool:
        return (self.root / "meta.json").is_file()

    @property
    def meta(self) -> dict[str, Any]:
        return json.loads((self.root / "meta.json").read_text(encoding="utf-8"))

    def path(self, name: str) -> Path:
        return self.root / name


class StageCache:
    """A folder of entries shared by the processes of one sweep."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def entry(self, kind: str, digest: str) -> Entry:
        return Entry(self.root / f"{kind}-{digest}")

    @contextlib.contextmanager
    def building(self, entry: Entry) -> Iterator[Path | None]:
        """Hold the entry's lock. Yields None when the entry is complete (read it), else a
        scratch folder to fill; its contents become the entry when the block ends cleanly
        and :func:`finish` wrote meta.json there."""
        lock_path = entry.root.with_name(entry.root.name + ".lock")
        with open(lock_path, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if entry.complete:
                    yield None
                    return
                tmp = entry.root.with_name(f".{entry.root.name}.tmp-{os.getpid()}")
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                try:
                    yield tmp
                    if (tmp / "meta.json").is_file():
                        shutil.rmtree(entry.root, ignore_errors=True)
                        os.replace(tmp, entry.root)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def finish(folder: Path, meta: dict[str, Any]) -> None:
    (folder / "meta.json").write_text(json.dumps(meta, default=str), encoding="utf-8")


# ------------------------------------------------------------------ raw data


def save_raw(folder: Path, raw: RawData) -> bool:
    """Store a loaded split; False when it cannot be stored without pickle (ragged images)."""
    if raw.images is not None:
        shapes = {np.asarray(i).shape for i in raw.images}
        if len(shapes) != 1:
            return False
        np.save(folder / "images.npy", np.stack([np.asarray(i) for i in raw.images]))
    else:
        assert raw.arrays is not None
        np.save(folder / "arrays.npy", raw.arrays)
    save_labels(folder / "labels.npz", raw.labels)
    finish(folder, {"source": raw.source, "class_names": list(raw.class_names),
                    "images": raw.images is not None})
    return True


def load_raw(entry: Entry) -> RawData:
    meta = entry.meta
    labels = load_labels(entry.path("labels.npz"))
    if meta["images"]:
        stack = np.load(entry.path("images.npy"), mmap_mode="r")
        return RawData(meta["source"], images=list(stack), labels=labels,
                       class_names=tuple(meta["class_names"]))
    return RawData(meta["source"], arrays=np.load(entry.path("arrays.npy")), labels=labels,
                   class_names=tuple(meta["class_names"]))


# ------------------------------------------------------------------ stage outputs


def save_outputs(folder: Path, outputs: list[np.ndarray]) -> None:
    np.savez(folder / "outputs.npz", *outputs)


def load_outputs(entry: Entry) -> list[np.ndarray]:
    with np.load(entry.path("outputs.npz")) as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]
