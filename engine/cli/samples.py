"""``artq samples``: list the bundled samples, train them, export them to ONNX.

``artq samples list`` prints each sample with its task, weights and config;
``artq samples train NAME [--epochs N] [--seed S] [--out DIR]`` trains one (a few minutes
on 2 CPU cores), writing the weights and, for the bundled folder, the NOTES.md section;
``artq samples export-onnx NAME [--out DIR]`` writes the ONNX sample made from a Keras one
(tf2onnx, checked against the Keras model).
"""

from __future__ import annotations

import argparse
import sys

from ..errors import EngineError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "samples",
        help="list, train or export to ONNX the bundled sample models",
        description="Bundled samples: synthetic data, small models, configs. Nothing is downloaded.",
    )
    sub = p.add_subparsers(dest="samples_command", metavar="{list,train,export-onnx}")
    sub.required = True
    sub.add_parser("list", help="list the samples, their tasks, weights and configs")
    t = sub.add_parser(
        "train",
        help="train a sample model from synthetic data",
        description="Train a sample from its synthetic data with a fixed seed.",
    )
    t.add_argument("name", help="sample name (see `artq samples list`)")
    t.add_argument("--epochs", type=int, default=None, help="epochs (default: the sample's)")
    t.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    t.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="folder for the weights (default: engine/samples/weights, which also "
        "rewrites the sample's section of NOTES.md)",
    )
    e = sub.add_parser(
        "export-onnx",
        help="export a Keras sample to its FP32 ONNX sample (needs tf2onnx)",
        description="Export a sample's Keras model to ONNX (tf2onnx, opset 17, batch 1, "
        "channels-first input) and check it against the Keras model on the test items.",
    )
    e.add_argument("name", help="sample name: digits, crnn_conv (or digits_onnx, ...)")
    e.add_argument("--out", default=None, metavar="DIR",
                   help="folder for the .onnx (default: engine/samples/weights, which also "
                   "rewrites the sample's section of NOTES.md)")
    return p


def _list() -> int:
    from ..samples import SAMPLES, WEIGHTS_DIR  # noqa: PLC0415

    for name in sorted(SAMPLES):
        s = SAMPLES[name]
        weights = WEIGHTS_DIR / s.weights
        done = "exported" if s.exported_from else "trained"
        state = done if weights.exists() else f"not {done}"
        print(f"{name:<10} {s.task:<15} {s.weights:<16} sample_configs/{s.config:<20} {state}")
        print(f"           {s.description}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from ..samples import SAMPLES  # noqa: PLC0415

    if args.name in SAMPLES and SAMPLES[args.name].framework == "torch":
        from ..backends.torch.samples.harness import train_sample  # noqa: PLC0415 - torch
    else:
        from ..backends.tf.samples.train import train_sample  # noqa: PLC0415 - TensorFlow
    train_sample(args.name, out_dir=args.out, seed=args.seed, epochs=args.epochs, log=print)
    return 0


def _export(args: argparse.Namespace) -> int:
    from ..backends.tf.samples.onnx_export import export_onnx  # noqa: PLC0415 - TensorFlow

    export_onnx(args.name, out_dir=args.out, log=print)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``artq samples …``; an :class:`EngineError` becomes one line on stderr."""
    try:
        if args.samples_command == "list":
            return _list()
        if args.samples_command == "export-onnx":
            return _export(args)
        return _train(args)
    except EngineError as err:
        print(f"artq samples: {err}", file=sys.stderr)
        return err.exit_code
