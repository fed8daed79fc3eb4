"""EAST-style text detector small enough for the STM32N6.

240×320×3 RGB in [0, 1] → at 1/4 resolution (60×80) a score map (sigmoid, 1 channel) and
an RBOX geometry map (4 distances in units of ``GEO_SCALE`` px, then the angle in radians;
see engine/tasks/east.py, which decodes them and rasterises the training targets).

Backbone: two plain stride-2 convs to 1/4, a depthwise-separable block at 1/4, then plain
3×3 convs at 1/8 and 1/16 (15×20; 1/32 would be 7.5 rows). U-shaped merge as in EAST:
nearest-neighbour upsampling built from CONCATENATION + RESHAPE (bilinear resizing would
run on the CPU), concatenation with the skip feature, 1×1 and 3×3 convs (plain at 1/8,
depthwise-separable at 1/4). Only CONV_2D, DEPTHWISE_CONV_2D, CONCATENATION, RESHAPE,
LOGISTIC (and fused ReLU/ReLU6): all NPU operators, kernels 3×3 at most.
Batch norm is folded into the convs by the converter.

``build_model`` takes the Keras module (``keras`` 3 or ``tf_keras``) and uses only layers
both have, with no Lambda layers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ....samples.synth_text import SCENE_SHAPE, make_scenes
from ....tasks.east import GEO_SCALE, STRIDE, rasterize

INPUT_SHAPE = (*SCENE_SHAPE, 3)
OUTPUT_SHAPE = (SCENE_SHAPE[0] // STRIDE, SCENE_SHAPE[1] // STRIDE)
#: Weight of the angle term in the geometry loss (EAST's λθ).
ANGLE_WEIGHT = 10.0
#: Weight of the geometry loss against the score loss. Measured here: at 1 (EAST's) and at
#: 0.2 the geometry gradient swamped the shared features (Adam follows the larger one) and
#: the score map had not separated text from background after 100–160 steps; at 0.02 it had.
GEO_WEIGHT = 0.02
#: Batch-norm statistics follow the weights faster than Keras's 0.99 (a short training:
#: at 0.99 the inference-mode outputs lagged the training-mode ones for ~500 steps).
BN_MOMENTUM = 0.9

#: Training items (crops) per epoch.
TRAIN_ITEMS_PER_EPOCH = 2400
EPOCHS = 5
BATCH = 16
#: Train on crops of this size (H, W; multiples of 16) cut from the full scenes, or on the
#: whole scenes when None. The detector is fully convolutional and its targets are per-pixel
#: distances, which a crop leaves valid; the weights then go into a full-size model.
#: Measured here: whole scenes took 822 s for box F1 0.962 (6 epochs × 1200); 128×160 crops
#: reached 0.896 in 200 s (4 × 2400), 96×320 strips (whole words) 0.896 in 264 s.
CROP: tuple[int, int] | None = (128, 160)
#: Crops cut from each generated scene (a batch holds BATCH crops): rendering a scene
#: (~19 ms here) costs about as much as training on one crop, so each scene serves twice.
CROPS_PER_SCENE = 2
#: Share of crops centred on a text box (the rest anywhere): text is ~4 % of the pixels.
CROP_ON_TEXT = 0.8
LEARNING_RATE = 2e-3
TEST_ITEMS = 1000


def _bn_relu6(k: ModuleType, x: Any, name: str) -> Any:
    x = k.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return k.layers.ReLU(6.0, name=f"{name}_relu")(x)


def _conv(k: ModuleType, x: Any, filters: int, kernel: int, name: str, strides: int = 1) -> Any:
    x = k.layers.Conv2D(
        filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    return _bn_relu6(k, x, name)


def _separable(k: ModuleType, x: Any, filters: int, name: str, strides: int = 1) -> Any:
    """MobileNet v1 block: 3×3 depthwise + BN + ReLU6, 1×1 pointwise + BN + ReLU6."""
    x = k.layers.DepthwiseConv2D(
        3, strides=strides, padding="same", use_bias=False, name=f"{name}_dw"
    )(x)
    x = _bn_relu6(k, x, f"{name}_dw")
    return _conv(k, x, filters, 1, f"{name}_pw")


def _upsample(k: ModuleType, x: Any, name: str) -> Any:
    """×2 nearest-neighbour upsampling from CONCATENATION and RESHAPE only.

    [x, x] along channels reshaped to twice the width repeats each column; [y, y] along
    the width reshaped to twice the height repeats each row. Exact, no weights, and both
    ops are NPU ops. Measured here: Keras 3's ``UpSampling2D`` lowers to TILE (a CPU op),
    and a ``Resizing`` layer put the batch norms after it in training mode in
    ``model.export`` (MEAN, SQUARED_DIFFERENCE, ASSIGN_VARIABLE in the .tflite).
    """
    h, w, c = (int(v) for v in x.shape[1:])
    y = k.layers.Concatenate(axis=-1, name=f"{name}_cols")([x, x])
    y = k.layers.Reshape((h, 2 * w, c), name=f"{name}_wide")(y)
    y = k.layers.Concatenate(axis=2, name=f"{name}_rows")([y, y])
    return k.layers.Reshape((2 * h, 2 * w, c), name=name)(y)


def build_model(
    k: ModuleType | None = None, width: int = 16, input_shape: tuple[int, int, int] = INPUT_SHAPE
) -> Any:
    """The detector; ``width`` is the stem's filters and the rest scale with it.

    ``input_shape`` other than the default (H and W multiples of 16) builds the same layers
    for training crops: the weights are interchangeable, only the upsampling reshapes differ.

    At the default width 16: 490k parameters, ~300 M MACs; channels 16 → 32 (1/4) →
    64 (1/8) → 128 (1/16), merge 64 (1/8) → 32 (1/4).
    """
    if k is None:
        import keras as k  # noqa: PLC0415 - keep importing this module free of TF cost
    w = width
    inp = k.Input(shape=input_shape, name="image")
    # Stem: two plain 3×3 stride-2 convs down to 1/4, as MobileNet starts with a plain conv.
    # Measured here, depthwise convs at these resolutions train ~1.4× slower on a CPU.
    x = _conv(k, inp, w, 3, "stem1", strides=2)  # 1/2
    x = _conv(k, x, 2 * w, 3, "stem2", strides=2)  # 1/4
    # At 1/4 (60×80) activations are large and weights few: depthwise-separable.
    f4 = _separable(k, x, 2 * w, "b1")
    # From 1/8 down, plain 3×3 convs: a weight there costs 1,200 (1/8) or 300 (1/16) MACs,
    # and the weights are what make an INT8 file ~4× smaller than its FP32 one — a model
    # of mostly per-channel overhead (scales, zero points, biases, names) shrinks far less.
    x = _conv(k, f4, 4 * w, 3, "b2", strides=2)  # 1/8
    f8 = _conv(k, x, 4 * w, 3, "b3")
    x = _conv(k, f8, 8 * w, 3, "b4", strides=2)  # 1/16 (1/32 would be 7.5 rows)
    # Two more 3×3 convs at 1/16 (cheap: 15×20) widen the receptive field to span words.
    x = _conv(k, x, 8 * w, 3, "b5")
    x = _conv(k, x, 8 * w, 3, "b6")
    # U-shaped merge: upsample (nearest), concatenate the skip, mix.
    x = _upsample(k, x, "up8")
    x = k.layers.Concatenate(name="merge8")([x, f8])
    x = _conv(k, x, 4 * w, 1, "m8_reduce")
    x = _conv(k, x, 4 * w, 3, "m8")
    # Narrow before upsampling rather than after (a 1×1 conv commutes with nearest
    # upsampling): the 1/4 concatenation stays 4·w channels, 300 KiB in INT8 at w = 16.
    x = _conv(k, x, 2 * w, 1, "m8_out")
    x = _upsample(k, x, "up4")
    x = k.layers.Concatenate(name="merge4")([x, f4])
    x = _conv(k, x, 2 * w, 1, "m4_reduce")
    x = _separable(k, x, 2 * w, "m4")
    x = _separable(k, x, 2 * w, "head")
    score = k.layers.Conv2D(1, 1, activation="sigmoid", name="score")(x)
    dist = k.layers.Conv2D(4, 1, activation="relu", name="distances")(x)
    angle = k.layers.Conv2D(1, 1, name="angle")(x)
    geo = k.layers.Concatenate(name="geometry")([dist, angle])
    return k.Model(inp, [score, geo], name="east")


def targets(labels: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Training targets: score (N, h, w, 1) and geometry + score mask (N, h, w, 6).

    The geometry loss needs to know which pixels are text, and a Keras loss sees only its
    own output's target, so the score map rides along as the sixth channel.
    """
    h, w = OUTPUT_SHAPE
    score = np.zeros((len(labels), h, w, 1), np.float32)
    geo = np.zeros((len(labels), h, w, 6), np.float32)
    for n, quads in enumerate(labels):
        s, g = rasterize(quads, (h, w))
        score[n, :, :, 0] = s
        geo[n, :, :, :5] = g
        geo[n, :, :, 5] = s
    return score, geo


def score_loss(y_true: Any, y_pred: Any) -> Any:
    """Dice loss over the batch (EAST's choice: text is ~4 % of the pixels) plus plain BCE.

    Measured here: dice alone drove every score to ~0 in the first steps, where the
    sigmoid saturates and dice's gradient vanishes (no pixel above 0.5 after 300 steps);
    the BCE term keeps the gradient alive.
    """
    import tensorflow as tf  # noqa: PLC0415

    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    inter = tf.reduce_sum(y_true * y_pred)
    union = tf.reduce_sum(y_true) + tf.reduce_sum(y_pred) + 1e-5
    dice = 1.0 - 2.0 * inter / union
    p = tf.clip_by_value(y_pred, 1e-6, 1.0 - 1e-6)
    bce = -tf.reduce_mean(y_true * tf.math.log(p) + (1.0 - y_true) * tf.math.log(1.0 - p))
    return dice + bce


def geometry_loss(y_true: Any, y_pred: Any) -> Any:
    """EAST's RBOX loss on text pixels: −log IoU of the axis-aligned boxes in the text's own
    frame, plus ``ANGLE_WEIGHT`` × (1 − cos Δθ). ``y_true`` is (…, 6) from :func:`targets`."""
    import tensorflow as tf  # noqa: PLC0415

    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    mask = y_true[..., 5]
    t = y_true[..., :4] * GEO_SCALE
    p = y_pred[..., :4] * GEO_SCALE
    area_t = (t[..., 0] + t[..., 2]) * (t[..., 1] + t[..., 3])
    area_p = (p[..., 0] + p[..., 2]) * (p[..., 1] + p[..., 3])
    h_i = tf.minimum(t[..., 0], p[..., 0]) + tf.minimum(t[..., 2], p[..., 2])
    w_i = tf.minimum(t[..., 1], p[..., 1]) + tf.minimum(t[..., 3], p[..., 3])
    inter = h_i * w_i
    union = area_t + area_p - inter
    iou_loss = -tf.math.log((inter + 1.0) / (union + 1.0))
    angle_loss = 1.0 - tf.cos(y_pred[..., 4] - y_true[..., 4])
    per_pixel = iou_loss + ANGLE_WEIGHT * angle_loss
    return GEO_WEIGHT * tf.reduce_sum(per_pixel * mask) / (tf.reduce_sum(mask) + 1e-5)


LOSSES = {"score": score_loss, "geometry": geometry_loss}


def crop_offsets(
    rng: np.random.Generator, quads: np.ndarray, crop: tuple[int, int], count: int
) -> list[tuple[int, int]]:
    """``count`` (top, left) input-pixel offsets of ``crop``-sized windows, multiples of
    STRIDE so the target maps crop on whole pixels; most are centred on a text box."""
    hh, ww = INPUT_SHAPE[:2]
    ch, cw = crop
    out = []
    for _ in range(count):
        if len(quads) and rng.random() < CROP_ON_TEXT:
            cx, cy = np.asarray(quads[int(rng.integers(len(quads)))]).mean(0)
            cx += rng.uniform(-cw / 4, cw / 4)
            cy += rng.uniform(-ch / 4, ch / 4)
        else:
            cx, cy = rng.uniform(0, ww), rng.uniform(0, hh)
        top = int(np.clip(cy - ch / 2, 0, hh - ch)) // STRIDE * STRIDE
        left = int(np.clip(cx - cw / 2, 0, ww - cw)) // STRIDE * STRIDE
        out.append((top, left))
    return out


def _batches(spec: Any, seed: int, batch: int, start: int = 0) -> Iterator[tuple[Any, Any]]:
    """Endless batches of fresh train scenes (or crops of them, see ``CROP``), through the
    one preprocess function."""
    from ....preprocess import preprocess  # noqa: PLC0415

    per = CROPS_PER_SCENE if CROP else 1
    scenes = batch // per
    rng = np.random.default_rng([seed, 7, start])
    i = start
    while True:
        g = make_scenes("train", scenes, seed, start=i)
        i += scenes
        x = preprocess(g.images, spec)
        score, geo = targets(g.labels)
        if CROP is None:
            yield x, (score, geo)
            continue
        ch, cw = CROP
        xs, ss, gs = [], [], []
        for n, quads in enumerate(g.labels):
            for top, left in crop_offsets(rng, quads, CROP, per):
                t, lft = top // STRIDE, left // STRIDE
                xs.append(x[n, top : top + ch, left : left + cw])
                ss.append(score[n, t : t + ch // STRIDE, lft : lft + cw // STRIDE])
                gs.append(geo[n, t : t + ch // STRIDE, lft : lft + cw // STRIDE])
        yield np.stack(xs), (np.stack(ss), np.stack(gs))


def predict(model: Any, x: np.ndarray, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    scores, geos = [], []
    for i in range(0, len(x), batch):
        s, g = model(x[i : i + batch], training=False)
        scores.append(np.asarray(s))
        geos.append(np.asarray(g))
    return np.concatenate(scores), np.concatenate(geos)


def train(
    out_path: Path, seed: int, epochs: int | None, log: Callable[[str], None]
) -> dict[str, Any]:
    """Train the detector on fresh synthetic scenes, save it, score the test split."""
    from ....preprocess import preprocess  # noqa: PLC0415
    from ....tasks.east import score_maps  # noqa: PLC0415
    from .train import fit, sample_config  # noqa: PLC0415

    cfg, spec = sample_config("east", INPUT_SHAPE)
    epochs = epochs or EPOCHS
    steps = TRAIN_ITEMS_PER_EPOCH // BATCH
    model = build_model()
    trained = build_model(input_shape=(*CROP, 3)) if CROP else model
    what = f"{CROP[0]}×{CROP[1]} crops" if CROP else "scenes"
    log(f"east: {model.count_params():,} parameters; {epochs} epoch{'' if epochs == 1 else 's'} × {steps * BATCH} {what}")

    # The test items of the sample config: what artq run will score the model on.
    test = make_scenes("test", TEST_ITEMS, cfg.data.test.seed)
    x_test = preprocess(test.images, spec)

    def on_epoch(epoch: int, loss: float) -> None:
        if trained is not model:
            model.set_weights(trained.get_weights())
        s, g = predict(model, x_test[:200])
        m = score_maps(s[..., 0], g, test.labels[:200], cfg.evaluation)
        log(
            f"epoch {epoch + 1}/{epochs}: loss {loss:.3f}, box F1 (200 test scenes) "
            f"{m['box_f1']:.3f} (P {m['box_precision']:.3f}, R {m['box_recall']:.3f}), "
            f"pixel F1 {m['pixel_f1']:.3f}"
        )

    def loss(y: Any, out: Any) -> Any:
        return score_loss(y[0], out[0]) + geometry_loss(y[1], out[1])

    t0 = time.time()
    fit(trained, _batches(spec, seed, BATCH), loss, epochs, steps, LEARNING_RATE, on_epoch)
    model.set_weights(trained.get_weights())
    train_s = time.time() - t0
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model.save(out_path)
    s, g = predict(model, x_test)
    metrics = score_maps(s[..., 0], g, test.labels, cfg.evaluation)
    return {
        "metrics": metrics,
        "facts": {
            "parameters": int(model.count_params()),
            "generator": "ocr_scenes",
            "train_items": epochs * steps * BATCH,
            "train_split": "train (fresh scenes every epoch)",
            "crops": f"{CROP[0]}×{CROP[1]}, {CROPS_PER_SCENE} per scene, "
            f"{CROP_ON_TEXT:.0%} centred on text" if CROP else "none (whole scenes)",
            "test_items": TEST_ITEMS,
            "epochs": epochs,
            "batch": BATCH,
            "optimizer": f"Adam, cosine decay from {LEARNING_RATE}",
            "train_seconds": round(train_s, 1),
            "losses": f"dice + BCE (score) + {GEO_WEIGHT:g} × (RBOX IoU + "
            f"{ANGLE_WEIGHT:g}·(1 − cos Δθ)) (geometry)",
            "preprocessing": spec.to_dict(),
        },
    }
