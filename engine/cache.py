"""What runs share, computed once: a content-addressed cache keyed by what each item
depends on.

Variants of one config differ in a few keys (calibration samples, granularity, ...), but
most of a job does not depend on them: rendering synthetic data, exporting the model,
converting and evaluating FP32 and FP16 (the FP32 outputs are the reference every stage is
compared with). Each of those is an *entry* named by a hash of its inputs: the model
file's bytes, the relevant config tables, artq's and TensorFlow's versions. An entry is
written to a temporary folder and renamed when complete, under an exclusive file lock, so
two variants running at once compute it once: the second waits, then reads.

``meta.json`` records the sha256 of every file of the entry; an entry whose files do not
match (a disk error, a half-copied folder, a hand edit) is rebuilt, never used. The cache
that runs share by default lives in the user's cache folder (:func:`default_root`) and is
kept under a size bound by evicting the least recently used entries (:meth:`StageCache.trim`).

No TensorFlow here; a backend adopts the shared export (``Backend.adopt_export``).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .data import RawData
from .labels import load_labels, save_labels

#: The default bound on the shared cache's size (``ARTQ_CACHE_MAX_MB`` overrides it).
DEFAULT_MAX_BYTES = 2 << 30


def default_root() -> Path:
    """``$ARTQ_CACHE_DIR``, else ``$XDG_CACHE_HOME/artq``, else ``~/.cache/artq``."""
    if os.environ.get("ARTQ_CACHE_DIR"):
        return Path(os.environ["ARTQ_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "artq"


def max_bytes() -> int:
    raw = os.environ.get("ARTQ_CACHE_MAX_MB")
    try:
        return int(float(raw) * (1 << 20)) if raw else DEFAULT_MAX_BYTES
    except ValueError:
        return DEFAULT_MAX_BYTES


def _versions() -> list[str]:
    """The frameworks that convert and run the stages: a new release may give other bytes."""
    out = []
    for dist in ("tensorflow", "ai-edge-litert", "onnxruntime", "onnxconverter-common"):
        try:
            out.append(f"{dist}={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            out.append(f"{dist}=-")
    return out


def sources_digest() -> str:
    """sha256 of artq's own sources as they are now (see :func:`code_digest`)."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


@functools.cache
def code_digest() -> str:
    """sha256 of artq's own sources, once per process: an entry made by other code (a
    checkout one commit on, an edited generator or metric) is never reused, though the
    version string is the same."""
    return sources_digest()


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
    """A short stable hash of JSON-able parts (plus artq's code and the frameworks' versions)."""
    blob = json.dumps([__version__, code_digest(), *_versions(), *parts], sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _files(folder: Path) -> list[Path]:
    return sorted(q for q in folder.rglob("*") if q.is_file() and q.name != "meta.json")


@dataclass(frozen=True)
class Entry:
    root: Path

    @property
    def complete(self) -> bool:
        """meta.json is there and every file it lists has the digest it recorded."""
        try:
            meta = self.meta
        except (OSError, ValueError):
            return False
        listed = meta.get("files")
        if not isinstance(listed, dict):
            return False
        present = {str(f.relative_to(self.root)) for f in _files(self.root)}
        if present != set(listed):
            return False
        return all(file_digest(self.root / name) == digest for name, digest in listed.items())

    @property
    def meta(self) -> dict[str, Any]:
        return json.loads((self.root / "meta.json").read_text(encoding="utf-8"))

    def path(self, name: str) -> Path:
        return self.root / name


@dataclass(frozen=True)
class CacheInfo:
    root: Path
    entries: int
    bytes: int
    limit: int


class StageCache:
    """A folder of entries shared by runs: the processes of one sweep, or every run of a
    user (:func:`default_root`)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        #: Entries this process read from the cache rather than built (report: ``cached``).
        self.hits: list[str] = []

    def _entries(self) -> list[Path]:
        return [p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]

    def info(self) -> CacheInfo:
        entries = self._entries()
        size = sum(f.stat().st_size for e in entries for f in e.rglob("*") if f.is_file())
        return CacheInfo(self.root, len(entries), size, max_bytes())

    def trim(self, limit: int | None = None) -> int:
        """Evict least recently used entries until the cache fits ``limit`` bytes; an entry
        another process holds is skipped. Returns the bytes freed."""
        limit = max_bytes() if limit is None else limit
        sized = []
        for e in self._entries():
            files = [f for f in e.rglob("*") if f.is_file()]
            used = max((f.stat().st_mtime for f in files if f.name == "meta.json"), default=0.0)
            sized.append((used, e, sum(f.stat().st_size for f in files)))
        total = sum(size for _, _, size in sized)
        freed = 0
        for _, e, size in sorted(sized, key=lambda t: t[0]):
            if total - freed <= limit:
                break
            lock_path = e.with_name(e.name + ".lock")
            with open(lock_path, "a+b") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                try:
                    shutil.rmtree(e, ignore_errors=True)
                    freed += size
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
            with contextlib.suppress(OSError):
                lock_path.unlink()
        return freed

    def clear(self) -> int:
        """Remove every entry no process holds; returns how many were removed."""
        n = len(self._entries())
        self.trim(0)
        return n - len(self._entries())

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
                    # Used now: least-recently-used eviction keeps it longest.
                    now = time.time()
                    with contextlib.suppress(OSError):
                        os.utime(entry.path("meta.json"), (now, now))
                    self.hits.append(entry.root.name)
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
    """Seal a scratch folder: meta.json with the digest of every file in it, written last."""
    files = {str(f.relative_to(folder)): file_digest(f) for f in _files(folder)}
    (folder / "meta.json").write_text(json.dumps({**meta, "files": files}, default=str),
                                      encoding="utf-8")


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
