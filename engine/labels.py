"""Labels to and from one ``.npz`` (no pickle), to hand them to the TensorFlow child.

Three shapes of label exist: integer classes, strings (CTC) and ragged lists of quads
(EAST). Ragged ones are padded with NaN and carry their counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def save_labels(path: Path, labels: Any) -> None:
    if labels is None:
        np.savez(path, kind=np.array("none"))
    elif isinstance(labels, np.ndarray) and labels.dtype.kind in "iuf":
        np.savez(path, kind=np.array("array"), values=labels)
    elif len(labels) and isinstance(labels[0], str | np.str_):
        np.savez(path, kind=np.array("strings"), values=np.asarray([str(s) for s in labels]))
    else:
        items = [np.asarray(q, np.float32) for q in labels]
        counts = np.array([len(q) for q in items], np.int64)
        tail = next((q.shape[1:] for q in items if len(q)), (4, 2))
        padded = np.full((len(items), max(int(counts.max(initial=0)), 1), *tail), np.nan, np.float32)
        for i, q in enumerate(items):
            if len(q):
                padded[i, : len(q)] = q
        np.savez(path, kind=np.array("ragged"), values=padded, counts=counts)


def load_labels(path: Path) -> Any:
    with np.load(path, allow_pickle=False) as z:
        kind = str(z["kind"])
        if kind == "none":
            return None
        if kind == "array":
            return z["values"]
        if kind == "strings":
            return [str(s) for s in z["values"]]
        values, counts = z["values"], z["counts"]
        return [values[i, : counts[i]] for i in range(len(counts))]
