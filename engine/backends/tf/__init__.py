"""TensorFlow's backend: typed calls on the parent side, TensorFlow in a child process.

Only the modules of this package import TensorFlow, and only inside the child
(``python -m engine.backends.tf.process``): :class:`TFBackend` turns each typed call into one
request of the child's protocol. Importing this package does not import TensorFlow.
"""

from __future__ import annotations

import dataclasses

from ...errors import ConversionError
from ...events import Log
from .. import BackendOptions, Converted, LayerErrors, LoadedModel, QatRequest, QatResult
from .process import TFProcess

#: The converter's float model for INT8, before calibration (a cache entry's file).
FLOAT_MODEL = "float_for_int8.tflite"
RECURRENT_LAYERS = {"LSTM", "GRU", "SimpleRNN", "Bidirectional", "RNN", "ConvLSTM2D"}


@dataclasses.dataclass(frozen=True)
class _Source:
    path: str
    fmt: str
    input_shape: list[int] | None
    layers: tuple[str, ...]


class TFBackend:
    """The :class:`engine.backends.Backend` for Keras (.keras, .h5) and SavedModel files."""

    #: Each instance is a child process of its own: a second one converts beside the first.
    own_process = True

    def __init__(self, options: BackendOptions, *, spare: bool = False,
                 _proc: TFProcess | None = None) -> None:
        """``spare``: the child also forks a second one after its TensorFlow import, which
        :meth:`sibling` hands out (the float lane's, with no import of its own)."""
        self._opt = options
        # tfmot needs Keras 2; the switch must be set before TF is imported, so only the QAT
        # job's own child gets it and the rest of the engine stays on Keras 3.
        env = {"TF_USE_LEGACY_KERAS": "1"} if options.legacy_keras else None
        self._proc = _proc or TFProcess(str(options.log_path), options.sink, options.cancel,
                                        env=env, spare=spare)
        self._src: _Source | None = None

    def sibling(self, options: BackendOptions) -> TFBackend | None:
        """A second backend on this one's spare (see ``spare``); None when it has none
        (not asked for, taken already, its child ended, or another Keras)."""
        if options.legacy_keras != self._opt.legacy_keras:
            return None
        proc = self._proc.take_spare(str(options.log_path), options.sink, options.cancel)
        return None if proc is None else TFBackend(options, _proc=proc)

    def load(self, path: str, fmt: str, input_shape: list[int] | None, export_dir: str,
             *, stage: str) -> LoadedModel:
        info = self._proc.call("load", "loading the model", stage=stage, path=path, format=fmt,
                               input_shape=input_shape, export_dir=export_dir,
                               custom_objects=self._opt.custom_objects)
        model = LoadedModel.from_dict(info)
        self._src = _Source(path, fmt, input_shape, tuple(model.layers))
        return model

    def adopt_export(self, path: str, fmt: str, input_shape: list[int] | None,
                     export_dir: str, model: LoadedModel, *, stage: str) -> None:
        self._proc.call("adopt", "using the shared exported model", stage=stage,
                        export_dir=export_dir)
        self._src = _Source(path, fmt, input_shape, tuple(model.layers))

    def convert(self, stage_name: str, out_path: str, calibration: str | None,
                granularity: str, io_type: str, allow_float: bool, *, stage: str) -> Converted:
        args = {"to": stage_name, "out_path": out_path, "calibration": calibration,
                "granularity": granularity, "io_type": io_type, "allow_float": allow_float}
        cache = self._opt.cache
        if stage_name != "int8" or allow_float or cache is None:
            return self._convert(args, stage_name, stage)
        # INT8's costly part is the converter's float model, which the calibration does not
        # change: a run with a new calibration calibrates the cached one (MobileNet v2: 6 s
        # of 7 s saved). Same bytes: a fresh conversion takes the same two steps.
        from ...cache import finish, key  # noqa: PLC0415

        entry = cache.entry("int8-float", key(self._opt.model_key, granularity))
        with cache.building(entry) as tmp:
            if tmp is None:
                res = self._convert({**args, "float_model": str(entry.path(FLOAT_MODEL))},
                                    stage_name, stage)
                return dataclasses.replace(res, reused=("float_model",))
            res = self._convert({**args, "float_out": str(tmp / FLOAT_MODEL)}, stage_name,
                                stage)
            if res.via is None and (tmp / FLOAT_MODEL).is_file():  # not a rebuilt model's
                finish(tmp, {"granularity": granularity})
            return res

    def equalize(self, calibration: str, export_dir: str, out_path: str, granularity: str,
                 io_type: str, allow_float: bool, *, stage: str) -> dict[str, object]:
        """The loaded Keras model with its weights equalized (``quantization.equalize``),
        exported to ``export_dir`` and converted to an INT8 ``out_path``; the pairs, the
        skipped layers and how far the float outputs moved on the calibration items."""
        if self._src is None:
            raise ConversionError("equalization needs the model loaded first")
        return self._proc.call(
            "equalize", "equalizing the weights", stage=stage, path=self._src.path,
            fmt=self._src.fmt, input_shape=self._src.input_shape,
            custom_objects=self._opt.custom_objects, calibration=calibration,
            export_dir=export_dir, out_path=out_path, granularity=granularity,
            io_type=io_type, allow_float=allow_float)

    def adopt(self, export_dir: str, *, stage: str) -> None:
        """Later stages (the per-layer analysis) start from ``export_dir``'s model."""
        self._proc.call("adopt", "using the equalized model", stage=stage,
                        export_dir=export_dir)

    def _convert(self, args: dict[str, object], stage_name: str, stage: str) -> Converted:
        try:
            res = self._proc.call("convert", f"converting to {stage_name.upper()}", stage=stage,
                                  **args)
        except ConversionError as exc:
            return self._recurrent_retry(exc, stage_name, args, stage)
        return Converted(int(res["size_bytes"]))

    def _recurrent_retry(self, exc: ConversionError, stage_name: str, args: dict[str, object],
                         stage: str) -> Converted:
        """TF 2.21's converter segfaults on a Keras 3 LSTM going to INT8 (measured, with or
        without float fallback). The same weights rebuilt in tf-keras convert cleanly, to
        TFLite's fused int8 LSTM kernels — so rebuild there and convert again."""
        src = self._src
        recurrent = sorted(set(src.layers) & RECURRENT_LAYERS) if src else []
        if not (src and stage_name == "int8" and recurrent and "crashed" in exc.message
                and src.fmt in ("keras", "h5")):
            raise exc
        self._opt.sink(Log(
            f"TensorFlow's converter crashed on the Keras 3 {', '.join(recurrent)} layer(s) "
            "(a known TF 2.21 crash); converting the same weights rebuilt in tf-keras instead",
            "warning"))
        self._proc.close()
        # The rebuilt model's own conversion: nothing read from or written to the cache.
        args = {k: v for k, v in args.items() if k not in ("float_model", "float_out")}
        o = self._opt
        self._proc = TFProcess(str(o.log_path), o.sink, o.cancel)
        export_dir = o.work_dir / "saved_model_tf_keras"
        try:
            self._proc.call("load", "rebuilding the model in tf-keras", stage=stage,
                            path=src.path, format=src.fmt, input_shape=src.input_shape,
                            export_dir=str(export_dir), via_tf_keras=True,
                            custom_objects=o.custom_objects)
            res = self._proc.call("convert", f"converting to {stage_name.upper()}", stage=stage,
                                  **args)
        except ConversionError as again:
            raise ConversionError(
                f"TensorFlow's converter crashed converting the model's {', '.join(recurrent)} "
                f"layer(s) to full INT8, directly and through tf-keras ({again.message})",
                "replace the recurrent head with convolutions (see the crnn_conv sample), "
                "or quantize the model with QAT",
            ) from None
        return Converted(int(res["size_bytes"]), via="tf-keras rebuild")

    def analyze_layers(self, calibration: str, int8_path: str, out_dir: str,
                       debug_samples: int, sensitivity_k: int, granularity: str,
                       io_type: str, allow_float: bool, *, stage: str) -> LayerErrors:
        res = self._proc.call(
            "analyze_layers", "measuring the per-layer error", stage=stage,
            calibration=calibration, int8_path=int8_path, out_dir=out_dir,
            debug_samples=debug_samples, sensitivity_k=sensitivity_k, granularity=granularity,
            io_type=io_type, allow_float=allow_float)
        return LayerErrors(errors=res["errors"], ranking=list(res["ranking"]),
                           candidates=list(res["candidates"]), reproduced=bool(res["reproduced"]),
                           debug_samples=int(res["debug_samples"]), raw=res.get("raw") or {})

    def qat_train(self, req: QatRequest, *, train_stage: str, convert_stage: str) -> QatResult:
        res = self._proc.call("qat_train", "fine-tuning with QAT", train_stage=train_stage,
                              convert_stage=convert_stage, custom_objects=self._opt.custom_objects,
                              **dataclasses.asdict(req))
        size = int(res.pop("size_bytes"))
        return QatResult(size, res)

    # --- a warm worker's pool (engine.backends.pool): one child, job after job

    @property
    def pid(self) -> int:
        return self._proc.pid

    def alive(self) -> bool:
        return self._proc.alive()

    def rebind(self, options: BackendOptions, wait: bool = True) -> None:
        if options.legacy_keras != self._opt.legacy_keras:
            raise ValueError("a Keras 2 child cannot serve a Keras 3 job, nor the reverse")
        self._proc.rebind(str(options.log_path), options.sink, options.cancel, wait=wait)
        self._opt = options
        self._src = None

    def reset(self) -> None:
        self._src = None
        self._proc.reset()

    def close(self) -> None:
        self._proc.close()

    def terminate(self) -> None:
        """End the child now: one that did no work needs no clean exit, and one still
        importing TensorFlow would read a request to quit only after the import."""
        self._proc.terminate()
