"""EAST maps, box decoding with NMS, and the east task's metrics on hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import EastConfig, EvaluationConfig
from engine.errors import DataError
from engine.tasks import get_task
from engine.tasks.east import (
    GEO_SCALE,
    MIN_SUPPORT,
    decode,
    match,
    polygon_iou,
    rasterize,
)

OUT = (60, 80)  # a 240×320 input at stride 4
CFG = EvaluationConfig(task="east", east=EastConfig(score_threshold=0.5, nms_iou=0.3, match_iou=0.5))


def rect(x0: float, y0: float, x1: float, y1: float, deg: float = 0.0) -> np.ndarray:
    """A rectangle's quad, clockwise from top-left, rotated by ``deg`` about its centre."""
    q = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)
    c = q.mean(0)
    t = np.deg2rad(deg)
    r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return ((q - c) @ r.T + c).astype(np.float32)


def maps(quads: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    score, geo = rasterize(np.asarray(quads, np.float32).reshape(-1, 4, 2), OUT)
    return score[None, ..., None], geo[None]


def test_polygon_iou_hand_worked() -> None:
    a = rect(0, 0, 10, 10)
    assert polygon_iou(a, a) == pytest.approx(1.0)
    assert polygon_iou(a, a[::-1]) == pytest.approx(1.0)  # either winding
    assert polygon_iou(a, rect(5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert polygon_iou(a, rect(20, 20, 30, 30)) == 0.0
    # A square and the same square turned 45°: intersection is the regular octagon.
    octagon = 2 * (np.sqrt(2) - 1) * 100  # area of a regular octagon of inradius 5 = 82.84
    assert polygon_iou(a, rect(0, 0, 10, 10, 45)) == pytest.approx(
        octagon / (200 - octagon), rel=1e-3
    )


def test_rasterize_counts_shrunk_pixels_by_hand() -> None:
    # Box x 8..72, y 8..40: height 32, shrunk by 0.2 × 32 = 6.4 on each side → centres
    # (4j + 2) in [14.4, 65.6] (j = 4..15: 12 columns), (4i + 2) in [14.4, 33.6] (i = 4..7).
    score, geo = rasterize(rect(8, 8, 72, 40)[None], OUT)
    assert score.sum() == 12 * 4
    assert np.array_equal(np.argwhere(score > 0)[[0, -1]], [[4, 4], [7, 15]])
    # Pixel (4, 4) sits at (18, 18): 10 px below the top, 54 left of the right edge, …
    assert geo[4, 4, :4] * GEO_SCALE == pytest.approx([10, 54, 22, 10])
    assert geo[4, 4, 4] == pytest.approx(0.0)


def test_tiny_box_still_marks_its_centre_pixel() -> None:
    score, _ = rasterize(rect(100, 100, 106, 104)[None], OUT)
    assert score.sum() == 1 and score[25, 25] == 1


@pytest.mark.parametrize("deg", [0.0, 7.0, -10.0])
def test_decode_recovers_known_boxes(deg: float) -> None:
    truth = [rect(20, 30, 180, 62, deg), rect(60, 150, 150, 170, -deg), rect(220, 90, 300, 130)]
    score, geo = maps(truth)
    boxes, scores = decode(score[0], geo[0])
    assert len(boxes) == len(truth)
    assert np.all(scores == pytest.approx(1.0))
    # The ends along the text are rebuilt from the score region at stride 4 (± 2 px), so
    # recovery is near, not bit-exact.
    for t in truth:
        assert max(polygon_iou(t, b) for b in boxes) > 0.95
    # Top/bottom and angle come from the geometry; left/right distances are not trusted
    # (EAST's weakest output on long words): corrupting them changes nothing.
    geo[..., 1] += 40 / GEO_SCALE
    geo[..., 3] *= 3
    again, _ = decode(score[0], geo[0])
    assert np.allclose(again, boxes)
    # A wrong top distance moves the box.
    geo[..., 0] += 8 / GEO_SCALE
    moved, _ = decode(score[0], geo[0])
    assert not np.allclose(moved, boxes)


def test_decode_ignores_isolated_noise_and_low_scores() -> None:
    score, geo = maps([rect(20, 30, 180, 62)])
    score = score * 0.9
    score[0, 50, 70, 0] = 0.95  # one stray pixel: below MIN_SUPPORT
    geo[0, 50, 70] = [0.1, 0.1, 0.1, 0.1, 0.0]
    boxes, _ = decode(score[0], geo[0])
    assert MIN_SUPPORT > 1 and len(boxes) == 1
    boxes, _ = decode(score[0], geo[0], score_threshold=0.96)
    assert len(boxes) == 0


def test_match_is_one_to_one() -> None:
    t = rect(0, 0, 100, 20)
    # Two detections of one box: one true positive, the other a false positive.
    assert match(np.stack([t, rect(2, 0, 100, 20)]), t[None], 0.5) == 1
    assert match(np.zeros((0, 4, 2)), t[None], 0.5) == 0
    # IoU 50/150 is below 0.5: no match.
    assert match(rect(50, 0, 150, 20)[None], t[None], 0.5) == 0


def test_task_metrics_hand_worked() -> None:
    task = get_task("east")
    assert task.primary == "box_f1"
    gt1, gt2, fp = rect(8, 8, 72, 40), rect(8, 120, 72, 152), rect(200, 160, 300, 200)
    # The model finds gt1, misses gt2 and reports a box where there is none.
    score, geo = maps([gt1, fp])
    m = task.score([score, geo], [np.stack([gt1, gt2])], CFG)
    assert m["box_precision"] == pytest.approx(1 / 2)
    assert m["box_recall"] == pytest.approx(1 / 2)
    assert m["box_f1"] == pytest.approx(1 / 2)
    # Pixels: gt1 and gt2 have 48 each (see above), fp has 100×40 shrunk by 8: centres
    # 4j + 2 in [208, 292] → j = 52..72, 21 columns; 4i + 2 in [168, 192] → i = 42..47,
    # 6 rows: 126 pixels. TP 48, FP 126, FN 48.
    assert m["pixel_f1"] == pytest.approx(2 * 48 / (2 * 48 + 126 + 48))


def test_outputs_found_by_channels_not_position() -> None:
    task = get_task("east")
    truth = [rect(20, 30, 180, 62, 5), rect(60, 150, 150, 170)]
    score, geo = maps(truth)
    a = task.score([score, geo], [np.stack(truth)], CFG)
    b = task.score([geo, score], [np.stack(truth)], CFG)
    assert a == b == {"box_f1": 1.0, "box_precision": 1.0, "box_recall": 1.0, "pixel_f1": 1.0}


def test_empty_images_score_perfect_when_nothing_is_found() -> None:
    score, geo = maps([])
    m = get_task("east").score([score, geo], [np.zeros((0, 4, 2), np.float32)], CFG)
    assert m == {"box_f1": 1.0, "box_precision": 1.0, "box_recall": 1.0, "pixel_f1": 1.0}
    # A missed box with nothing predicted: precision and recall 0.
    m = get_task("east").score([score, geo], [rect(8, 8, 72, 40)[None]], CFG)
    assert m["box_recall"] == 0.0 and m["box_precision"] == 0.0 and m["box_f1"] == 0.0


def test_bad_outputs_and_labels_are_named() -> None:
    task = get_task("east")
    score, geo = maps([rect(8, 8, 72, 40)])
    with pytest.raises(DataError, match="score map"):
        task.score([score], [rect(8, 8, 72, 40)[None]], CFG)
    with pytest.raises(DataError, match=r"\(K, 4, 2\)"):
        task.score([score, geo], [np.zeros((3, 2))], CFG)
    with pytest.raises(DataError, match="labels for"):
        task.score([score, geo], [], CFG)
