"""Data in: ``.npz`` arrays, a folder of ``.npy`` files, a folder of images, or a bundled
synthetic generator. Everything that is an image goes through :func:`preprocess`.
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .cancel import CancelToken
from .config import DataSource
from .errors import ConfigError, DataError, InputFileError
from .events import Log, Progress, Sink, null_sink
from .preprocess import PreprocessSpec, preprocess

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


@dataclass(frozen=True)
class RawData:
    """One split as loaded: raw images to preprocess, or model-ready arrays."""

    source: str
    images: list[np.ndarray] | None = None
    arrays: np.ndarray | None = None
    labels: Any = None
    class_names: tuple[str, ...] = ()
    #: model-ready arrays: the dtype they were stored in (uint8 ones are often unscaled images)
    stored_dtype: str = ""

    def __len__(self) -> int:
        return len(self.images) if self.images is not None else len(self.arrays)  # type: ignore[arg-type]

    def subset(self, idx: np.ndarray) -> RawData:
        labels = self.labels
        if labels is not None:
            labels = labels[idx] if isinstance(labels, np.ndarray) else [labels[i] for i in idx]
        return RawData(
            self.source,
            [self.images[i] for i in idx] if self.images is not None else None,
            self.arrays[idx] if self.arrays is not None else None,
            labels,
            self.class_names,
            self.stored_dtype,
        )


@dataclass(frozen=True)
class Dataset:
    """Model-ready float32 inputs (N, ...) and their labels (or None)."""

    x: np.ndarray
    y: Any
    source: str
    class_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.x)


def _natural_key(p: Path | str) -> list[Any]:
    # calibration_data_2.npy sorts before calibration_data_10.npy
    name = p if isinstance(p, str) else p.name
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name)]


def _read_image(path: Path) -> np.ndarray:
    try:
        # Not np.fromfile: it takes a read error for the end of the file (an empty image).
        data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    except OSError as exc:
        raise InputFileError(
            str(path), f"cannot read ({exc.strerror or exc})",
            "check the file's permissions, or remove it from the folder",
        ) from None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise InputFileError(
            str(path), "cannot be decoded as an image", "replace or remove the file, then run again"
        )
    if img.dtype == np.uint16:
        # 16-bit PNG/TIFF: the same 0…255 scale as 8-bit images (÷257 maps 65535 to 255), kept
        # in float so the extra bits reach preprocessing instead of being rounded away.
        return img.astype(np.float32) / np.float32(257.0)
    if img.dtype != np.uint8:
        raise InputFileError(
            str(path),
            f"is a {img.dtype} image; artq reads 8- and 16-bit images",
            "convert it to 8-bit PNG or JPEG",
        )
    return img


def _walk_files(root: Path) -> list[Path]:
    """Every file under ``root``; an unlistable folder is an error.

    Not ``Path.rglob``: it skips a folder it may not list, and a skipped class folder would
    silently give the next class its label.
    """
    def fail(exc: OSError) -> None:
        raise InputFileError(
            exc.filename or str(root), f"cannot list the folder ({exc.strerror or exc})",
            "check the folder's permissions, or move it out of the image folder",
        )

    return [Path(d) / n for d, _, names in os.walk(root, onerror=fail) for n in names]


#: What copying a folder between systems leaves beside the images: macOS's AppleDouble
#: ``._name`` twins and ``.DS_Store``, Windows' ``Thumbs.db``/``desktop.ini``, zip's __MACOSX.
SYSTEM_FILES = frozenset({"thumbs.db", "desktop.ini", "__macosx"})


def is_junk(name: str) -> bool:
    """A hidden or system file or folder, never data (``._a.png`` is not an image)."""
    return name.startswith(".") or name.lower() in SYSTEM_FILES


def class_folders(root: Path) -> list[str]:
    """The class sub-folders of an image folder, sorted (hidden and system folders left out)."""
    return sorted(d.name for d in root.iterdir() if d.is_dir() and not is_junk(d.name))


def load_images(root: Path, key: str, sink: Sink, cancel: CancelToken | None,
                stage: str = "data") -> RawData:
    """Images from a folder; sub-folder names are the class labels (sorted)."""
    if not root.is_dir():
        raise InputFileError(
            str(root),
            "image folder not found" if not root.exists() else "is not a folder",
            f"set {key}.path to a folder of .png/.jpg/.bmp images",
        )
    every = _walk_files(root)
    junk = [p for p in every if any(is_junk(part) for part in p.relative_to(root).parts)]
    if junk:
        sink(Log(f"{key}: skipped {len(junk)} hidden or system file{'s' if len(junk) != 1 else ''}"
                 f" in {root} (such as {junk[0].name}): not images", "warning"))
    skip = set(junk)
    files = sorted(
        (p for p in every
         if p not in skip and p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
        key=lambda p: [_natural_key(q) for q in p.relative_to(root).parts],
    )
    if not files:
        raise InputFileError(
            str(root),
            "holds no images (.png, .jpg, .jpeg, .bmp)",
            f"put images in it or point {key}.path elsewhere",
        )
    # Every class folder counts, even an empty one (as Keras' image_dataset_from_directory):
    # labels are indices into the sorted names, so a split missing a class would shift them.
    subdirs = class_folders(root)
    labelled = bool(subdirs) and all(p.parent != root for p in files)
    images: list[np.ndarray] = []
    labels: list[int] = []
    for i, f in enumerate(files):
        if cancel is not None and i % 64 == 0:
            cancel.check()
        images.append(_read_image(f))
        if labelled:
            labels.append(subdirs.index(f.relative_to(root).parts[0]))
        sink(Progress(stage, i + 1, len(files), f"{key}: {f.name}"))
    return RawData(
        str(root),
        images=images,
        labels=np.asarray(labels, np.int64) if labelled else None,
        class_names=tuple(subdirs) if labelled else (),
    )


def check_source(src: DataSource, key: str) -> None:
    """What can be known of a file source without loading it: it exists, is a file or a
    folder as its kind says, and an .npz holds the named arrays. The job's preflight."""
    path = Path(src.path)
    if not path.exists():
        raise InputFileError(str(path), "not found", f"set {key}.path to existing data")
    if src.kind == "npz":
        if path.is_dir():
            raise InputFileError(str(path), "is a folder, not an .npz file",
                                 f"set {key}.kind = \"npy_dir\" or \"images\" for a folder")
        try:
            with np.load(path, allow_pickle=False) as npz:
                _check_npz_names(list(npz.files), src, key, path)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            raise InputFileError(str(path), "is not a readable .npz file", "write it with numpy.savez") from None
    elif not path.is_dir():
        raise InputFileError(str(path), f"is a file, but kind = \"{src.kind}\" reads a folder",
                             f"set {key}.kind = \"npz\" for an .npz file, or point {key}.path at a folder")


def _check_npz_names(names: list[str], src: DataSource, key: str, path: Path) -> None:
    if src.x not in names:
        raise ConfigError(
            f"array {src.x!r} is not in {path.name} (it holds: {', '.join(names) or 'nothing'})",
            f"set {key}.x to the name of the input array",
            key=f"{key}.x",
        )
    if src.y and src.y not in names and key.endswith("test"):
        raise ConfigError(
            f"array {src.y!r} is not in {path.name} (it holds: {', '.join(names)})",
            f"set {key}.y to the label array, or y = \"\" for no labels",
            key=f"{key}.y",
        )


def load_npz(path: Path, src: DataSource, key: str) -> RawData:
    if not path.is_file():
        raise InputFileError(str(path), "file not found", f"set {key}.path to an existing .npz file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = list(npz.files)
            _check_npz_names(names, src, key, path)
            x = npz[src.x]
            y = npz[src.y] if src.y and src.y in names else None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise InputFileError(
            str(path), f"is not a readable .npz file ({exc})", "write it with numpy.savez"
        ) from None
    if x.ndim == 0:
        raise DataError(f"{path}: array {src.x!r} is a single number, not items", f"check {key}.x")
    if y is not None and y.ndim == 0:
        raise DataError(f"{path}: array {src.y!r} is a single number, not one label per item",
                        f"check {key}.y")
    if y is not None and len(y) != len(x):
        if len(y) == 1:
            # Not "1 labels for 32 inputs": one item without its batch axis reads as 32 rows.
            raise DataError(
                f"{path}: 1 label for an array {src.x!r} of shape {x.shape}: the items' batch "
                "axis looks missing", f"save one item as {src.x}=x[None] (a first axis of 1)")
        raise DataError(f"{path}: {len(y)} labels for {len(x)} inputs", f"check {key}.y")
    if src.raw:
        return RawData(str(path), images=list(x), labels=y)
    return RawData(str(path), arrays=_as_float(x, path), labels=y, stored_dtype=str(x.dtype))


def load_npy_dir(root: Path, src: DataSource, key: str, cancel: CancelToken | None) -> RawData:
    if not root.is_dir():
        raise InputFileError(
            str(root),
            "folder not found" if not root.exists() else "is not a folder",
            f"set {key}.path to a folder of .npy files (calibration_data_0.npy, ...)",
        )
    files = sorted((p for p in root.glob("*.npy") if p.name != "labels.npy"), key=_natural_key)
    if not files:
        raise InputFileError(
            str(root), "holds no .npy files", "save one array per item, e.g. calibration_data_0.npy"
        )
    items = []
    for i, f in enumerate(files):
        if cancel is not None and i % 64 == 0:
            cancel.check()
        try:
            a = np.load(f, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise InputFileError(str(f), f"is not a readable .npy file ({exc})") from None
        # The guide saves each item with its batch axis: (1, H, W, C).
        if a.ndim >= 2 and a.shape[0] == 1:
            a = a[0]
        if items and a.shape != items[0].shape:
            raise DataError(
                f"{f}: shape {a.shape} differs from {files[0].name}'s {items[0].shape}",
                "every item must have the same shape",
            )
        items.append(a)
    labels = None
    if (root / "labels.npy").is_file():
        try:
            labels = np.load(root / "labels.npy", allow_pickle=False)
        except (OSError, ValueError, EOFError):
            raise InputFileError(
                str(root / "labels.npy"), "is not a readable array of labels",
                "save one integer label per item with numpy.save",
            ) from None
        if labels.ndim == 0:
            raise DataError(f"{root / 'labels.npy'}: a single number, not one label per item")
        if len(labels) != len(items):
            raise DataError(f"{root / 'labels.npy'}: {len(labels)} labels for {len(items)} items")
    if src.raw:
        return RawData(str(root), images=items, labels=labels)
    x = np.stack(items)
    return RawData(str(root), arrays=_as_float(x, root), labels=labels, stored_dtype=str(x.dtype))


def unscaled_images(raw: RawData, key: str) -> str:
    """A warning when model-ready arrays look like 8-bit images fed as they are, else ""."""
    if raw.arrays is None or raw.stored_dtype not in ("uint8", "int8", "uint16"):
        return ""
    hi = float(raw.arrays.max()) if raw.arrays.size else 0.0
    if hi <= 1.0:
        return ""
    return (f"{key} ({raw.source}): {raw.stored_dtype} arrays with values up to {hi:g} go to the "
            "model as they are (raw = false), without preprocessing.scale; if the model expects "
            "scaled input, set raw = true so they are preprocessed like images")


def grey_images(raw: RawData, key: str, channels: int) -> str:
    """A warning when grey images feed a colour model (each grey value is copied to R, G and
    B: a model trained on colour then sees no colour and may score at chance), else ""."""
    if raw.images is None or channels != 3 or not raw.images:
        return ""
    grey = sum(1 for im in raw.images if im.ndim == 2 or (im.ndim == 3 and im.shape[2] == 1))
    if not grey:
        return ""
    return (f"{key} ({raw.source}): {grey} of {len(raw.images)} images are greyscale but the "
            "model takes 3 colour channels; each grey value is copied to all three")


def check_same_classes(a: RawData, key_a: str, b: RawData, key_b: str) -> None:
    """Two labelled image folders must name the same classes, or index i means two things."""
    if a.class_names and b.class_names and a.class_names != b.class_names:
        only_a = sorted(set(a.class_names) - set(b.class_names))
        only_b = sorted(set(b.class_names) - set(a.class_names))
        diff = "; ".join(x for x in (
            f"only in {key_a}: {', '.join(only_a)}" if only_a else "",
            f"only in {key_b}: {', '.join(only_b)}" if only_b else "") if x)
        raise DataError(
            f"{key_a} ({a.source}) and {key_b} ({b.source}) have different class folders "
            f"({diff or 'same names, other order'}); labels are indices into the sorted folder "
            "names, so they would not mean the same class",
            "give every split the same class folders; an empty folder is fine",
        )


def check_class_labels(data: Dataset, key: str, n_classes: int) -> None:
    """Classification labels against the model's outputs, naming the split and its source."""
    y = np.asarray(data.y)
    where = f"{key} ({data.source})"
    if data.class_names and len(data.class_names) != n_classes:
        raise DataError(
            f"{where}: {len(data.class_names)} class folder{'' if len(data.class_names) == 1 else 's'} ({', '.join(data.class_names[:6])}"
            f"{', …' if len(data.class_names) > 6 else ''}) but the model has {n_classes} classes; "
            "labels are indices into the sorted folder names",
            f"give {key} one folder per model class, in the model's class order (empty is fine)",
        )
    if y.ndim == 2 and y.shape[1] == n_classes and len(y) == len(data):
        raise DataError(f"{where}: labels of shape {y.shape} look one-hot",
                        "save class indices instead: y.argmax(axis=1)")
    if y.ndim != 1 or len(y) != len(data):
        raise DataError(f"{where}: labels of shape {y.shape} for {len(data)} items",
                        "give one integer class index per item")
    if y.dtype.kind not in "iu":
        raise DataError(f"{where}: labels are {y.dtype}; classification needs integer class indices",
                        "save them as integers, e.g. y.astype('int64')")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise DataError(f"{where}: labels run {y.min()}..{y.max()} but the model has {n_classes} classes",
                        "check the label array or the class folders")


def _as_float(x: np.ndarray, path: Path) -> np.ndarray:
    if x.dtype.kind not in "fiub":
        raise DataError(f"{path}: arrays of {x.dtype} cannot be model inputs", "save float32 arrays")
    return np.ascontiguousarray(x, dtype=np.float32)


def load_source(
    src: DataSource,
    key: str,
    sink: Sink = null_sink,
    cancel: CancelToken | None = None,
    stage: str = "data",
) -> RawData:
    """Load one data source as configured under ``key`` (e.g. ``data.calibration``); its
    progress goes to ``stage``, the stage that is loading it (``qat_data`` for QAT's splits:
    under ``data`` it moved the finished data row of the run again)."""
    if src.kind == "synthetic":
        from .samples import generate  # noqa: PLC0415 - only synthetic sources need it

        gen = generate(src.generator, src.split, src.count, src.seed)
        sink(Progress(stage, src.count, src.count, f"{key}: {src.count} synthetic items"))
        labels = gen.labels
        if isinstance(labels, list) and labels and isinstance(labels[0], int | np.integer):
            labels = np.asarray(labels, np.int64)
        return RawData(f"synthetic:{src.generator}/{src.split}", images=gen.images, labels=labels)
    path = Path(src.path)
    if src.kind == "images":
        return load_images(path, key, sink, cancel, stage)
    if src.kind == "npz":
        return load_npz(path, src, key)
    return load_npy_dir(path, src, key, cancel)


def prepare(raw: RawData, spec: PreprocessSpec | None, input_shape: tuple[int, ...], key: str) -> Dataset:
    """Raw split → model-ready :class:`Dataset`; images go through :func:`preprocess`."""
    if raw.images is not None:
        if spec is None:
            raise DataError(f"{key}: images need preprocessing but the model input is not an image")
        try:
            x = preprocess(raw.images, spec)
        except DataError as exc:  # preprocess knows the item, not the split or its source
            raise DataError(f"{raw.source}: {key} {exc.message}", exc.hint) from None
    else:
        assert raw.arrays is not None
        x = raw.arrays
        if x.shape[1:] != tuple(input_shape):
            raise DataError(
                f"{raw.source}: items have shape {x.shape[1:]} but the model input is {tuple(input_shape)}",
                f"give {key} arrays shaped like the model input, or set raw = true to preprocess images",
            )
    if len(x) == 0:
        raise DataError(f"{raw.source}: {key} holds no items", f"point {key} at data with at least one item")
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if bad.any():
        # NaN or inf would reach the converter's range statistics and every metric.
        first = np.flatnonzero(bad)[:3].tolist()
        raise DataError(
            f"{raw.source}: {int(bad.sum())} of {len(x)} {key} items hold NaN or infinite values "
            f"(items {', '.join(map(str, first))}{', …' if bad.sum() > 3 else ''})",
            "clean or drop those items",
        )
    return Dataset(x, raw.labels, raw.source, raw.class_names)


def select_calibration(n_available: int, samples: int, seed: int) -> np.ndarray:
    """Indices of the calibration items: ``samples`` drawn without replacement, by seed."""
    rng = np.random.default_rng(seed)
    k = min(samples, n_available)
    return np.sort(rng.choice(n_available, size=k, replace=False))
