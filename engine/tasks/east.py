"""EAST text detection: ground-truth maps, box decoding with NMS, and detection metrics.

The detector outputs, at 1/``STRIDE`` of the input resolution, a score map (N, h, w, 1) in
[0, 1] and an RBOX geometry map (N, h, w, 5): for each pixel the distances to the top,
right, bottom and left edges of its text box in units of ``GEO_SCALE`` input pixels, then
the box's angle in radians (positive = clockwise in image coordinates, the top edge running
from (0, 0) towards (cos θ, sin θ)). Distances are scaled so that distances and angle share
one INT8 output tensor without the angle losing its resolution.

Pixel (i, j) of an output map stands for the input point ((j + ½)·STRIDE, (i + ½)·STRIDE).
The same code rasterises training targets (engine.backends.tf.samples.east) and the score maps that
``pixel_f1`` compares with, so training and evaluation agree on what a text pixel is.
NumPy and OpenCV only: the evaluator runs without TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..config import EvaluationConfig
from ..errors import DataError
from . import Task

STRIDE = 4
GEO_SCALE = 64.0
#: Each text box's score region is its rectangle shrunk by this fraction of its height on
#: every side (EAST shrinks by 0.3 of the shortest edge at each vertex; this is the
#: rectangle form of the same idea), so neighbouring boxes never touch in the score map.
SHRINK = 0.2
#: A decoded box must be backed by at least this many score-map pixels; fewer is noise.
MIN_SUPPORT = 2


def _frame(quad: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The angle of a quad's long axis and its unit vectors u (along text), v (down)."""
    q = np.asarray(quad, np.float64)
    d = (q[1] - q[0]) + (q[2] - q[3])  # top and bottom edges, left → right
    theta = float(np.arctan2(d[1], d[0]))
    u = np.array([np.cos(theta), np.sin(theta)])
    v = np.array([-np.sin(theta), np.cos(theta)])
    return theta, u, v


def rasterize(
    quads: np.ndarray, out_shape: tuple[int, int], stride: int = STRIDE
) -> tuple[np.ndarray, np.ndarray]:
    """Score map (h, w) float32 in {0, 1} and geometry (h, w, 5) float32 for one image.

    Each quad is taken as its enclosing rectangle aligned with its own text direction; a
    pixel is text when its centre lies inside that rectangle shrunk by ``SHRINK`` × height.
    A box too small to cover any pixel centre still marks the pixel nearest its centre.
    """
    h, w = out_shape
    score = np.zeros((h, w), np.float32)
    geo = np.zeros((h, w, 5), np.float32)
    quads = np.asarray(quads, np.float64).reshape(-1, 4, 2)
    cx = (np.arange(w) + 0.5) * stride
    cy = (np.arange(h) + 0.5) * stride
    for quad in quads:
        theta, u, v = _frame(quad)
        pu, pv = quad @ u, quad @ v
        u0, u1, v0, v1 = pu.min(), pu.max(), pv.min(), pv.max()
        s = SHRINK * (v1 - v0)
        # Only the quad's bounding window can hold its pixels.
        x0, y0 = quad.min(0)
        x1, y1 = quad.max(0)
        j0, j1 = max(0, int(x0 // stride) - 1), min(w, int(x1 // stride) + 2)
        i0, i1 = max(0, int(y0 // stride) - 1), min(h, int(y1 // stride) + 2)
        if j0 >= j1 or i0 >= i1:
            continue
        gx, gy = np.meshgrid(cx[j0:j1], cy[i0:i1])
        a = gx * u[0] + gy * u[1]
        b = gx * v[0] + gy * v[1]
        inside = (a >= u0 + s) & (a <= u1 - s) & (b >= v0 + s) & (b <= v1 - s)
        if not inside.any():
            c = quad.mean(0)
            ci, cj = int(c[1] // stride), int(c[0] // stride)
            if not (i0 <= ci < i1 and j0 <= cj < j1):
                continue
            inside[ci - i0, cj - j0] = True
        d = np.stack([b - v0, u1 - a, v1 - b, a - u0], axis=-1) / GEO_SCALE
        win_s = score[i0:i1, j0:j1]
        win_g = geo[i0:i1, j0:j1]
        win_s[inside] = 1.0
        win_g[inside, :4] = d[inside]
        win_g[inside, 4] = theta
    return score, geo


def _clip(poly: list[tuple[float, float]], a: np.ndarray, b: np.ndarray, sign: float):
    """Sutherland–Hodgman: the part of ``poly`` on the inner side of the line a → b."""

    def side(p: tuple[float, float]) -> float:
        return sign * ((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]))

    out: list[tuple[float, float]] = []
    for i, cur in enumerate(poly):
        prev = poly[i - 1]
        sc, sp = side(cur), side(prev)
        if sc >= 0:
            if sp < 0:
                t = sp / (sp - sc)
                out.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
            out.append(cur)
        elif sp >= 0:
            t = sp / (sp - sc)
            out.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
    return out


def _area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def polygon_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two convex quads (4, 2).

    Sutherland–Hodgman clipping rather than cv2.intersectConvexConvex, which was measured
    here to return a third of the area for two identical quads (shared edges).
    """
    pa = np.asarray(a, np.float64).reshape(-1, 2)
    pb = np.asarray(b, np.float64).reshape(-1, 2)
    area_a, area_b = _area(pa), _area(pb)
    if abs(area_a) <= 1e-9 or abs(area_b) <= 1e-9:
        return 0.0
    sign = 1.0 if area_b > 0 else -1.0  # inner side of b's edges for either winding
    poly = [tuple(p) for p in pa]
    for i in range(len(pb)):
        poly = _clip(poly, pb[i], pb[(i + 1) % len(pb)], sign)
        if not poly:
            return 0.0
    inter = abs(_area(np.asarray(poly)))
    union = abs(area_a) + abs(area_b) - inter
    return float(inter / union) if union > 0 else 0.0


def _component_box(ys: np.ndarray, xs: np.ndarray, conf: np.ndarray, geo: np.ndarray,
                   stride: int) -> np.ndarray:
    """One quad from the pixels of one text region and their RBOX predictions.

    Top and bottom come from the per-pixel RBOX distances (score-weighted). Along the text,
    EAST's distances are weakest: a pixel far from an end of a long word cannot see it
    (measured here: ±33 px error on left/right against ±3 px on top/bottom), so the ends
    come from the region itself, grown back by the shrink margin the targets were made
    with. The angle is the region's principal axis when it is elongated (its pixel centres
    pin the direction better than any one pixel's angle), else the mean predicted angle.
    """
    g = geo[ys, xs].astype(np.float64)
    p = np.stack([(xs + 0.5) * stride, (ys + 0.5) * stride], axis=1)
    theta = float(np.average(g[:, 4], weights=conf))
    if len(p) >= 3:
        centred = p - np.average(p, axis=0, weights=conf)
        evals, evecs = np.linalg.eigh(np.cov(centred.T, aweights=conf))
        if evals[1] > 4 * max(evals[0], 1e-9):
            axis = evecs[:, 1] if evecs[0, 1] >= 0 else -evecs[:, 1]
            theta = float(np.arctan2(axis[1], axis[0]))
    u = np.array([np.cos(theta), np.sin(theta)])
    v = np.array([-u[1], u[0]])
    a, b = p @ u, p @ v
    d = g[:, :4] * GEO_SCALE
    top = np.average(b - d[:, 0], weights=conf)
    bottom = np.average(b + d[:, 2], weights=conf)
    margin = SHRINK * max(bottom - top, 0.0) + stride / 2
    left, right = a.min() - margin, a.max() + margin
    corners = [(left, top), (right, top), (right, bottom), (left, bottom)]
    return np.array([ca * u + cb * v for ca, cb in corners])


def decode(
    score: np.ndarray,
    geo: np.ndarray,
    score_threshold: float = 0.5,
    nms_iou: float = 0.3,
    stride: int = STRIDE,
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (m, 4, 2) and scores (m,) from one image's score (h, w[, 1]) and geometry maps.

    Locality-aware merging as in EAST, with the locality made explicit: the pixels above
    ``score_threshold`` form connected regions (the shrunk score regions of neighbouring
    words do not touch), each region's per-pixel RBOX predictions merge into one box, and a
    standard NMS with the polygon IoU ≥ ``nms_iou`` removes duplicates.
    """
    import cv2  # noqa: PLC0415 - only the decoder needs it

    s = np.asarray(score, np.float64).reshape(score.shape[0], score.shape[1])
    n, comp = cv2.connectedComponents((s > score_threshold).astype(np.uint8), connectivity=8)
    boxes, scores = [], []
    for c in range(1, n):
        ys, xs = np.nonzero(comp == c)
        if len(ys) < MIN_SUPPORT:
            continue
        conf = s[ys, xs]
        boxes.append(_component_box(ys, xs, conf, np.asarray(geo), stride))
        scores.append(float(conf.mean()))
    keep: list[int] = []
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        if all(polygon_iou(boxes[i], boxes[k]) < nms_iou for k in keep):
            keep.append(int(i))
    out = np.asarray([boxes[i] for i in keep], np.float32).reshape(-1, 4, 2)
    return out, np.asarray([scores[i] for i in keep], np.float32)


def match(pred: np.ndarray, truth: np.ndarray, iou: float) -> int:
    """True positives: greedy one-to-one matching of boxes by IoU ≥ ``iou``, best pairs first."""
    pairs = []
    for i, p in enumerate(pred):
        for j, t in enumerate(truth):
            v = polygon_iou(p, t)
            if v >= iou:
                pairs.append((v, i, j))
    used_p, used_t, tp = set(), set(), 0
    for _, i, j in sorted(pairs, reverse=True):
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            tp += 1
    return tp


def _split_outputs(outputs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(score (N, h, w), geometry (N, h, w, 5)), found by channel count, not by position.

    TFLite conversion may reorder a model's outputs, so position is not to be trusted.
    """
    arrs = [np.asarray(o) for o in outputs]
    score = [a for a in arrs if a.ndim == 4 and a.shape[-1] == 1]
    geo = [a for a in arrs if a.ndim == 4 and a.shape[-1] == 5]
    if len(score) != 1 or len(geo) != 1 or score[0].shape[:3] != geo[0].shape[:3]:
        shapes = ", ".join(str(a.shape) for a in arrs)
        raise DataError(
            "the east task needs two outputs of the same size: a score map (N, h, w, 1) and a "
            f"geometry map (N, h, w, 5); the model gives {shapes}",
            "use an EAST-style detector (engine/backends/tf/samples/east.py) or another task",
        )
    return score[0][..., 0], geo[0]


def _check_labels(labels: Any, n: int) -> list[np.ndarray]:
    if labels is None or len(labels) != n:
        got = "no" if labels is None else str(len(labels))
        raise DataError(f"{got} labels for {n} test items")
    out = []
    for k, q in enumerate(labels):
        a = np.asarray(q, np.float32)
        if a.size == 0:
            out.append(np.zeros((0, 4, 2), np.float32))
            continue
        if a.ndim != 3 or a.shape[1:] != (4, 2):
            raise DataError(
                f"east label {k} has shape {a.shape}; each item needs quads of shape (K, 4, 2)",
                "give each image's text boxes as (K, 4, 2) pixel (x, y), clockwise from top-left",
            )
        out.append(a)
    return out


def _ratio(num: int, den: int) -> float:
    return num / den if den else 1.0


def score_maps(
    score: np.ndarray, geo: np.ndarray, labels: Sequence[np.ndarray], cfg: EvaluationConfig
) -> dict[str, float]:
    """Detection metrics over a set, pooled (micro) over all boxes and all pixels."""
    e = cfg.east
    n_pred = n_true = tp = 0
    ptp = pfp = pfn = 0
    h, w = score.shape[1:3]
    for k, truth in enumerate(labels):
        boxes, _ = decode(score[k], geo[k], float(e.score_threshold), float(e.nms_iou))
        n_pred += len(boxes)
        n_true += len(truth)
        tp += match(boxes, truth, float(e.match_iou))
        gt, _ = rasterize(truth, (h, w))
        pred = score[k] > e.score_threshold
        gt_b = gt > 0.5
        ptp += int(np.count_nonzero(pred & gt_b))
        pfp += int(np.count_nonzero(pred & ~gt_b))
        pfn += int(np.count_nonzero(~pred & gt_b))
    precision = _ratio(tp, n_pred) if n_pred or not n_true else 0.0
    recall = _ratio(tp, n_true)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    pixel_f1 = _ratio(2 * ptp, 2 * ptp + pfp + pfn)
    return {"box_f1": f1, "box_precision": precision, "box_recall": recall, "pixel_f1": pixel_f1}


def score_outputs(
    outputs: Sequence[np.ndarray], labels: Any, cfg: EvaluationConfig
) -> dict[str, float]:
    score, geo = _split_outputs(outputs)
    return score_maps(score, geo, _check_labels(labels, len(score)), cfg)


TASK = Task(
    name="east",
    primary="box_f1",
    metrics=("box_f1", "box_precision", "box_recall", "pixel_f1"),
    needs_labels=True,
    score=score_outputs,
    description=(
        "text detection: one box per connected score-map region (RBOX top/bottom/angle, "
        "region ends), polygon-IoU NMS, matched one-to-one to the labels at IoU ≥ match_iou; "
        "pixel F1 of the thresholded score map against the shrunk ground-truth boxes"
    ),
    outputs=None,  # the score map and the geometry, both read by the box decoder
    class_scores=False,
)
