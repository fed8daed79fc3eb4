"""Job configuration: one TOML file per job, validated into frozen dataclasses.

Unknown keys, wrong types and out-of-range values are :class:`ConfigError` naming the file
and the key path (``calibration.samples: must be ≥ 1, got -3``). Relative paths in the file
are taken from the file's folder, those given with ``--set`` from the current directory;
both are stored absolute, so a run's copy of its config can be run again from anywhere.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass
from pydantic.types import StrictBool, StrictFloat, StrictInt, StrictStr

from .errors import ConfigError
from .rawconfig import apply_overrides, load_raw

_STRICT = ConfigDict(extra="forbid", frozen=True)

PosInt = Annotated[StrictInt, Field(ge=1)]
NonNegInt = Annotated[StrictInt, Field(ge=0)]
Number = StrictFloat | StrictInt
PosNumber = Annotated[Number, Field(gt=0)]

Stage = Literal["fp32", "fp16", "int8"]
Task = Literal["classification", "generic", "ctc", "east"]
Profile = Literal["prototype", "general", "high", "production"]

# The guide's thresholds (points of task-metric drop) per use-case profile.
PROFILE_THRESHOLDS: dict[str, float] = {
    "prototype": 5.0,
    "general": 2.0,
    "high": 1.0,
    "production": 0.5,
}


@dataclass(config=_STRICT)
class ModelConfig:
    #: A model file (.keras, .h5, SavedModel folder); or set ``torch`` instead.
    path: StrictStr = ""
    #: (H, W, C) to export with when the model's own input has unknown dimensions; for a
    #: PyTorch model its input without the batch axis, (C, H, W), and required.
    input_shape: tuple[PosInt, ...] | None = None
    #: ``"layers.py:DICT"``: the user's custom layer classes (engine.custom_objects).
    custom_objects: StrictStr = ""
    #: A PyTorch model: ``"file.py:callable"``, the callable returning an ``nn.Module``.
    torch: StrictStr = ""
    #: The PyTorch model's state_dict (``torch.save(model.state_dict(), ...)``).
    weights: StrictStr = ""


@dataclass(config=_STRICT)
class DataSource:
    kind: Literal["npz", "npy_dir", "images", "synthetic"]
    path: StrictStr = ""
    #: npz: names of the input and label arrays (``y = ""`` for no labels).
    x: StrictStr = "x"
    y: StrictStr = "y"
    #: npz/npy_dir: true when the arrays are raw images to preprocess; false when they are
    #: already model-ready (the guide's calibration_data_{i}.npy).
    raw: StrictBool = False
    #: synthetic: which bundled generator, how many items, which seed.
    generator: StrictStr = ""
    count: NonNegInt = 0
    seed: StrictInt = 0
    #: synthetic: which split of the generator (splits never overlap).
    split: Literal["train", "validation", "calibration", "test"] = "test"


@dataclass(config=_STRICT)
class DataConfig:
    calibration: DataSource
    test: DataSource
    train: DataSource | None = None
    validation: DataSource | None = None


@dataclass(config=_STRICT)
class PreprocessConfig:
    #: (H, W) to resize images to; default: the model's input size.
    resize: tuple[PosInt, PosInt] | None = None
    #: Colour mode the model expects; default: gray for 1 channel, rgb for 3.
    color: Literal["rgb", "bgr", "gray"] | None = None
    scale: Number = 1.0 / 255.0
    mean: tuple[Number, ...] = (0.0,)
    std: tuple[PosNumber, ...] = (1.0,)
    interpolation: Literal["area", "linear", "nearest", "cubic"] = "area"
    #: Model input channel order; default: told from where its 1 or 3 channels sit.
    layout: Literal["nhwc", "nchw"] | None = None


@dataclass(config=_STRICT)
class CalibrationConfig:
    samples: PosInt = 200
    seed: StrictInt = 0
    #: PTQ: convert and score this many calibration draws (draw 0 is ``seed``'s).
    draws: PosInt = 1
    #: Which draw is kept: "median" (its figure on a held-out slice of the calibration data
    #: is the median) or "best" (the best there). Never chosen on the test set.
    keep: Literal["median", "best"] = "median"
    #: Activation ranges: minmax (as ST does); ONNX also percentile and mse (least expected
    #: squared error over each tensor's histogram). README: why "entropy" was dropped.
    method: Literal["minmax", "percentile", "mse"] = "minmax"
    #: percentile method: the % of each tensor's values its range keeps.
    percentile: Annotated[Number, Field(gt=90, le=100)] = 99.999


@dataclass(config=_STRICT)
class QatConfig:
    epochs: PosInt = 5
    learning_rate: PosNumber = 1e-5
    batch_size: PosInt = 32
    #: Stop after this many epochs without a better validation metric (0: never).
    patience: NonNegInt = 2
    seed: StrictInt = 0
    #: Set the fake-quant ranges from calibration data before training.
    init_ranges: StrictBool = True
    #: Keep BatchNorm statistics fixed while fine-tuning (inference-mode BN).
    freeze_batch_norm: StrictBool = True
    #: Run the matching PTQ job first when no PTQ run of this model exists.
    compare_ptq: StrictBool = True


@dataclass(config=_STRICT)
class QuantizationConfig:
    method: Literal["ptq", "qat"] = "ptq"
    granularity: Literal["per_channel", "per_tensor"] = "per_channel"
    io_type: Literal["int8", "uint8", "float32"] = "int8"
    stages: tuple[Stage, ...] = ("fp32", "fp16", "int8")
    #: Let ops without an INT8 kernel stay in float (they then run on the CPU, slowly).
    allow_float: StrictBool = False
    #: "sequential": after PTQ (.tflite or QDQ .onnx), fold each conv/depthwise/FC layer's
    #: mean per-channel output error on the calibration items into its int32 bias, layer by
    #: layer; kept only if closer to FP32 on held-out items. "off": the converter's model.
    bias_correction: Literal["off", "sequential"] = "off"
    equalize: StrictBool = False  #: cross-layer equalization (engine.equalize), if better
    qat: QatConfig = dataclasses.field(default_factory=QatConfig)


@dataclass(config=_STRICT)
class CtcConfig:
    #: Characters in class order; the CTC blank is the last class.
    charset: StrictStr = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@dataclass(config=_STRICT)
class EastConfig:
    score_threshold: Annotated[Number, Field(gt=0, lt=1)] = 0.5
    nms_iou: Annotated[Number, Field(gt=0, le=1)] = 0.3
    match_iou: Annotated[Number, Field(gt=0, le=1)] = 0.5


@dataclass(config=_STRICT)
class EvaluationConfig:
    task: Task = "classification"
    profile: Profile = "general"
    #: Evaluate at most this many test items (0: all).
    max_samples: NonNegInt = 0
    #: Interpreter threads in parallel (0: one per core).
    workers: NonNegInt = 0
    #: The outputs the verdict judges, by name (empty: all); the others are still shown.
    outputs: tuple[StrictStr, ...] = ()
    #: Outputs that are class scores though not softmax-like (logits): judged on argmax.
    class_outputs: tuple[StrictStr, ...] = ()
    #: ``artq run`` exits 4 on FAIL or NOT RESOLVED, as with ``--strict-confident``.
    strict_confident: StrictBool = False
    ctc: CtcConfig = dataclasses.field(default_factory=CtcConfig)
    east: EastConfig = dataclasses.field(default_factory=EastConfig)


@dataclass(config=_STRICT)
class AnalysisConfig:
    #: Neural-ART target: a name shipped with artq or a path to a target TOML.
    target: StrictStr = "stm32n6570-dk"
    #: Calibration items used for the per-layer error analysis (0: skip it).
    debug_samples: NonNegInt = 32
    #: How many of the most suspect layers to try in float (0: skip sensitivity).
    sensitivity_k: NonNegInt = 3


@dataclass(config=_STRICT)
class OutputConfig:
    #: Where run folders go; relative to the config file when set there, else to the cwd.
    runs_dir: StrictStr = "runs"


@dataclass(config=_STRICT)
class JobConfig:
    model: ModelConfig
    data: DataConfig
    name: StrictStr = ""
    preprocessing: PreprocessConfig = dataclasses.field(default_factory=PreprocessConfig)
    calibration: CalibrationConfig = dataclasses.field(default_factory=CalibrationConfig)
    quantization: QuantizationConfig = dataclasses.field(default_factory=QuantizationConfig)
    evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)
    analysis: AnalysisConfig = dataclasses.field(default_factory=AnalysisConfig)
    output: OutputConfig = dataclasses.field(default_factory=OutputConfig)
    #: The file this config came from (not a TOML key).
    source: StrictStr = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the config as run (no ``source``), ready for TOML or JSON."""
        d = dataclasses.asdict(self)
        d.pop("source", None)
        return _drop_none(d)

    @property
    def threshold(self) -> float:
        return PROFILE_THRESHOLDS[self.evaluation.profile]


_ADAPTER = TypeAdapter(JobConfig)


def _drop_none(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _drop_none(v) for k, v in d.items() if v is not None}
    if isinstance(d, list | tuple):
        return [_drop_none(v) for v in d]
    return d


def _format_error(err: dict[str, Any], raw: dict[str, Any]) -> tuple[str, str, str]:
    """(key path, message, hint) for one pydantic error, in artq's words."""
    loc = [str(p) for p in err.get("loc", ()) if not str(p).startswith("function-")]
    # pydantic adds the union member's type name to the location; drop it.
    loc = [p for p in loc if p not in {"int", "float", "str", "bool", "tuple", "DataSource"}]
    key = ".".join(loc)
    typ = err.get("type", "")
    given = err.get("input")
    if typ in ("extra_forbidden", "unexpected_keyword_argument"):
        known = _known_keys(loc[:-1])
        close = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys here: {', '.join(known)}"
        return key, "unknown key", hint
    if typ in ("missing", "too_long") and loc and loc[-1].isdigit():
        parent_key = ".".join(loc[:-1])
        return parent_key, "has the wrong number of values", "see sample_configs/ for its form"
    if typ == "missing":
        return key, "is required but missing", "add it to the config (see sample_configs/)"
    msg = err.get("msg", "invalid value")
    msg = msg[0].lower() + msg[1:] if msg else msg
    if typ in ("tuple_type", "list_type") and isinstance(given, str | int | float):
        return key, f"needs a list, got {given!r}", f"write it as a list: {json.dumps([given])}"
    return key, f"{msg}, got {given!r}", ""


def _known_keys(path: list[str]) -> list[str]:
    cls: Any = JobConfig
    for p in path:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if p not in fields:
            return []
        typ = fields[p].type
        cls = _dataclass_in(typ)
        if cls is None:
            return []
    return [f.name for f in dataclasses.fields(cls) if f.name != "source"]


def _dataclass_in(typ: Any) -> Any:
    if isinstance(typ, str):
        typ = globals().get(typ.split("|")[0].strip(), None)
    if dataclasses.is_dataclass(typ):
        return typ
    for arg in getattr(typ, "__args__", ()) or ():
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def validate(raw: dict[str, Any], source: str = "") -> JobConfig:
    """Validate a raw dict (paths already absolute) into a :class:`JobConfig`."""
    raw = dict(raw)
    raw["source"] = source
    if not raw.get("name"):
        raw["name"] = Path(source).stem if source else "job"
    cal = raw.get("calibration")
    if isinstance(cal, dict) and cal.get("method") == "entropy":
        raise ConfigError(
            "'entropy' calibration was dropped: on every model measured it was further from "
            "FP32 than min/max (README, Calibration methods)",
            'use "minmax", "percentile" or "mse"', file=source, key="calibration.method")
    try:
        cfg = _ADAPTER.validate_python(raw)
    except ValidationError as exc:
        # An unknown key first: a misspelt [data.tset] also makes data.test "missing", and
        # the typo is the cause the user needs to see.
        errors = sorted(exc.errors(), key=lambda e: e.get("type") not in (
            "extra_forbidden", "unexpected_keyword_argument"))
        key, msg, hint = _format_error(errors[0], raw)
        # A union (int | float) reports once per member: count distinct keys only.
        n_keys = len({_format_error(e, raw)[0] for e in errors})
        more = f" (and {n_keys - 1} more problem(s))" if n_keys > 1 else ""
        raise ConfigError(msg + more, hint, file=source, key=key) from None
    from .config_checks import check_semantics  # noqa: PLC0415 - it reads these types

    check_semantics(cfg)
    return cfg


def load_config(
    path: str | os.PathLike[str],
    overrides: dict[str, Any] | list[str] | None = None,
) -> JobConfig:
    """Load and validate a job config, applying ``--set``-style overrides.

    ``overrides`` is either ``{"calibration.samples": 50}`` or ``["calibration.samples=50"]``.
    """
    raw = load_raw(path)
    # A path typed on the command line is relative to where it was typed, as --runs-dir is.
    apply_overrides(raw, overrides, Path.cwd())
    try:
        return validate(raw, source=str(path))
    except ConfigError as exc:
        given = _override_keys(overrides)
        if exc.key and any(exc.key == k or exc.key.startswith(k + ".") for k in given):
            # The key came from the command line: blame it, not the file.
            raise ConfigError(exc.problem, exc.hint, key=f"--set {exc.key}") from None
        raise


def _override_keys(overrides: dict[str, Any] | list[str] | None) -> list[str]:
    if isinstance(overrides, dict):
        return list(overrides)
    return [o.split("=", 1)[0].strip() for o in overrides or []]


def replace(cfg: JobConfig, overrides: dict[str, Any]) -> JobConfig:
    """A copy of ``cfg`` with dotted-key overrides applied and validated again."""
    raw = cfg.to_dict()
    apply_overrides(raw, overrides)
    return validate(raw, source=cfg.source)
