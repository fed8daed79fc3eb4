"""CRNN text recognizer for 32×128 grey word crops, in two variants.

``crnn_conv``: a small VGG-style backbone, then a convolutional sequence head — a conv whose
kernel height is the remaining feature height collapses the height to 1, 1×3 convs mix
neighbouring time steps, a 1×1 conv classifies each of the T = 32 steps. Every op (CONV_2D,
MAX_POOL_2D, RELU, RESHAPE) is one the Neural-ART NPU runs, with kernels ≤ 3 high.

``crnn_lstm``: the same backbone and height collapse, then the classic bidirectional LSTM
and a Dense classifier. The NPU does not run the LSTM: it is the trade-off artq reveals.

Both output logits (N, T, len(charset) + 1), the CTC blank last. No softmax in the model, so
crnn_conv stays wholly on the NPU; greedy CTC decoding needs only the argmax, and a host
that wants probabilities applies softmax itself (engine/tasks/ctc.py).

``build_model`` takes the Keras module to build with (``keras`` 3 by default, ``tf_keras``
for QAT) and uses only layers both have, with no Lambda layers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ....samples.synth_text import WORD_CHARSET, WORD_LENGTHS, WORD_SHAPE, make_words

INPUT_SHAPE = (*WORD_SHAPE, 1)
NUM_CLASSES = len(WORD_CHARSET) + 1
VARIANTS = ("conv", "lstm")
#: Sample name → variant.
SAMPLE_VARIANTS = {"crnn_conv": "conv", "crnn_lstm": "lstm"}

# Training recipe (both variants). Each epoch draws fresh items from the train split, so
# the model never sees an item twice and the test split stays unseen.
# CTC sits on a plateau (all blank) for ~650 steps before it finds the alignment, measured
# here; small batches get there in fewer items.
TRAIN_ITEMS_PER_EPOCH = 9600
# crnn_lstm gets fewer epochs: it is the comparison point (its LSTM runs on the CPU
# anyway) and its results are reported either way; crnn_conv must clear 90 %.
# Measured here (crnn_conv): at 2e-3 the all-blank plateau lasted two epochs and 12 epochs
# took 692 s for 92.2 %; at 3e-3 it lasts one, and 7 epochs gave 90.2 % in 217 s.
EPOCHS = {"conv": 9, "lstm": 6}
BATCH = 32
LEARNING_RATE = 3e-3
TEST_ITEMS = 1000
#: Batch-norm statistics follow the weights faster than Keras's 0.99 (a short training:
#: at 0.99 the inference-mode outputs lagged the training-mode ones for hundreds of steps).
BN_MOMENTUM = 0.9


def _conv_bn_relu(
    k: ModuleType,
    x: Any,
    filters: int,
    kernel: tuple[int, int],
    name: str,
    padding: str = "same",
    strides: int = 1,
) -> Any:
    # Bias-free conv + batch norm: the converter folds the BN into the conv.
    x = k.layers.Conv2D(
        filters, kernel, strides=strides, padding=padding, use_bias=False, name=f"{name}_conv"
    )(x)
    x = k.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return k.layers.ReLU(name=f"{name}_relu")(x)


def build_model(
    variant: str = "conv",
    k: ModuleType | None = None,
    num_classes: int = NUM_CLASSES,
    width: int = 12,
) -> Any:
    """A CRNN (input 32×128×1 in [0, 1], output logits (T=32, ``num_classes``)).

    ``width`` is the first layer's filters; the rest scale with it (tests use tiny widths).
    """
    if variant not in VARIANTS:
        from ....errors import ConfigError

        raise ConfigError(f"unknown CRNN variant {variant!r}", "use 'conv' or 'lstm'")
    if k is None:
        import keras as k  # noqa: PLC0415 - keep importing this module free of TF cost
    w = width
    inp = k.Input(shape=INPUT_SHAPE, name="image")
    # A stride-2 stem: full-resolution activations dominate training time on a CPU.
    x = _conv_bn_relu(k, inp, w, (3, 3), "c1", strides=2)  # 16×64
    x = _conv_bn_relu(k, x, 2 * w, (3, 3), "c2")
    x = k.layers.MaxPooling2D((2, 2), name="p2")(x)  # 8×32
    x = _conv_bn_relu(k, x, 4 * w, (3, 3), "c3")
    x = _conv_bn_relu(k, x, 4 * w, (3, 3), "c4")
    x = k.layers.MaxPooling2D((2, 1), name="p3")(x)  # 4×32: keep the width = time steps
    x = _conv_bn_relu(k, x, 6 * w, (3, 3), "c5")
    # Collapse the height: kernel (4, 1) over the remaining 4 rows → 1×32.
    x = _conv_bn_relu(k, x, 8 * w, (x.shape[1], 1), "collapse", padding="valid")
    steps = int(x.shape[2])
    if variant == "conv":
        # Sequence context by convolution over the width (time) axis only.
        x = _conv_bn_relu(k, x, 8 * w, (1, 3), "seq1")
        x = _conv_bn_relu(k, x, 8 * w, (1, 3), "seq2")
        x = k.layers.Conv2D(num_classes, (1, 1), name="classifier")(x)
        out = k.layers.Reshape((steps, num_classes), name="logits")(x)
    else:
        x = k.layers.Reshape((steps, 8 * w), name="to_sequence")(x)
        x = k.layers.Bidirectional(
            k.layers.LSTM(4 * w, return_sequences=True, name="lstm"), name="bilstm"
        )(x)
        out = k.layers.Dense(num_classes, name="logits")(x)
    return k.Model(inp, out, name=f"crnn_{variant}")


def with_unrolled_lstm(model: Any, k: ModuleType | None = None) -> Any:
    """A copy of ``model`` (same weights) whose LSTMs have ``unroll=True``.

    Measured here (TF 2.21, Keras 3): the plain LSTM crashes TFLite's full-INT8 converter
    (SIGSEGV, with or without float fallback); unrolled, it converts to full INT8 as
    per-step FULLY_CONNECTED / LOGISTIC / TANH / MUL / ADD. Both directions of a
    Bidirectional must be unrolled, or the crash remains.
    """
    if k is None:
        import keras as k  # noqa: PLC0415
    cfg = model.get_config()
    for layer in cfg["layers"]:
        inner = layer["config"]
        for key in ("layer", "backward_layer"):
            if key in inner and inner[key]["class_name"] == "LSTM":
                inner[key]["config"]["unroll"] = True
        if layer["class_name"] == "LSTM":
            inner["unroll"] = True
    copy = k.Model.from_config(cfg)
    copy.set_weights(model.get_weights())
    return copy


def encode_labels(texts: list[str], charset: str = WORD_CHARSET,
                  max_len: int = WORD_LENGTHS[1]) -> np.ndarray:
    """Strings → int32 (N, max_len) class ids, padded with −1 (what :func:`ctc_loss` reads)."""
    index = {c: i for i, c in enumerate(charset)}
    out = np.full((len(texts), max_len), -1, np.int32)
    for n, t in enumerate(texts):
        if len(t) > max_len:
            raise ValueError(f"label {t!r} is longer than {max_len} characters")
        out[n, : len(t)] = [index[c] for c in t]
    return out


def ctc_loss(y_true: Any, y_pred: Any) -> Any:
    """Per-item CTC loss from padded labels (−1 = padding) and logits (N, T, C), blank last.

    Plain TensorFlow ops, so it serves as a loss under Keras 3 and tf-keras alike (both may
    hand labels over as float, or with a trailing axis: both are undone here).
    """
    import tensorflow as tf  # noqa: PLC0415

    logits = tf.cast(y_pred, tf.float32)
    labels = tf.cast(tf.reshape(y_true, (tf.shape(y_true)[0], -1)), tf.int32)
    label_length = tf.reduce_sum(tf.cast(labels >= 0, tf.int32), axis=1)
    labels = tf.maximum(labels, 0)
    logit_length = tf.fill([tf.shape(logits)[0]], tf.shape(logits)[1])
    return tf.nn.ctc_loss(
        labels, logits, label_length, logit_length, logits_time_major=False, blank_index=-1
    )


def _batches(spec: Any, seed: int, batch: int, start: int = 0) -> Iterator[tuple[Any, Any]]:
    """Endless (images, labels) batches of fresh train items, through the one preprocess."""
    from ....preprocess import preprocess  # noqa: PLC0415

    i = start
    while True:
        g = make_words("train", batch, seed, start=i)
        i += batch
        yield preprocess(g.images, spec), encode_labels(g.labels)


def predict(model: Any, x: np.ndarray, batch: int = 256) -> np.ndarray:
    return np.concatenate(
        [np.asarray(model(x[i : i + batch], training=False)) for i in range(0, len(x), batch)]
    )


def train(
    out_path: Path,
    seed: int,
    epochs: int | None,
    log: Callable[[str], None],
    sample: str = "crnn_conv",
) -> dict[str, Any]:
    """Train ``sample`` (crnn_conv or crnn_lstm), save it to ``out_path``, score the test split."""
    from ....preprocess import preprocess  # noqa: PLC0415
    from ....tasks.ctc import greedy_decode, text_metrics  # noqa: PLC0415
    from .train import fit, sample_config  # noqa: PLC0415

    variant = SAMPLE_VARIANTS[sample]
    cfg, spec = sample_config(sample, INPUT_SHAPE)
    if cfg.evaluation.ctc.charset != WORD_CHARSET:
        from ....errors import ConfigError  # noqa: PLC0415

        raise ConfigError(
            "evaluation.ctc.charset differs from the charset the CRNN is trained on",
            f"set it to {WORD_CHARSET!r}",
            file=cfg.source,
            key="evaluation.ctc.charset",
        )
    epochs = epochs or EPOCHS[variant]
    steps = TRAIN_ITEMS_PER_EPOCH // BATCH
    model = build_model(variant)
    log(f"{sample}: {model.count_params():,} parameters; {epochs} epoch{'' if epochs == 1 else 's'} × {steps * BATCH} items")

    # The test items of the sample config: what artq run will score the model on.
    test = make_words("test", TEST_ITEMS, cfg.data.test.seed)
    x_test = preprocess(test.images, spec)

    def on_epoch(epoch: int, loss: float) -> None:
        m = text_metrics(greedy_decode(predict(model, x_test[:300]), WORD_CHARSET), test.labels[:300])
        log(
            f"epoch {epoch + 1}/{epochs}: loss {loss:.3f}, "
            f"seq acc (300 test items) {m['sequence_accuracy']:.3f}, char acc {m['char_accuracy']:.3f}"
        )

    def loss(y: Any, logits: Any) -> Any:
        import tensorflow as tf  # noqa: PLC0415

        return tf.reduce_mean(ctc_loss(y, logits))

    t0 = time.time()
    fit(model, _batches(spec, seed, BATCH), loss, epochs, steps, LEARNING_RATE, on_epoch)
    train_s = time.time() - t0
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model.save(out_path)
    metrics = text_metrics(greedy_decode(predict(model, x_test), WORD_CHARSET), test.labels)
    return {
        "metrics": metrics,
        "facts": {
            "variant": variant,
            "parameters": int(model.count_params()),
            "generator": "ocr_words",
            "train_items": epochs * steps * BATCH,
            "train_split": "train (fresh items every epoch)",
            "test_items": TEST_ITEMS,
            "epochs": epochs,
            "batch": BATCH,
            "optimizer": f"Adam, cosine decay from {LEARNING_RATE}",
            "train_seconds": round(train_s, 1),
            "charset": WORD_CHARSET,
            "preprocessing": spec.to_dict(),
        },
    }
