"""The tunable settings: which config keys the workbench edits, and how a what-if is saved.

A session is a job config file (or a bundled sample used as a template for a bare model)
plus the values the user changed. Only changed keys are sent to the worker as
``--set KEY=VALUE`` (the worker validates them, as the CLI would), and Save writes the
source TOML again with those values changed in place, so its comments survive (tomlkit).
No pydantic here: loading a :class:`~engine.config.JobConfig` costs ~0.15 s and happens in
a thread, never before the first paint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Keys holding paths, relative to the config file's folder in a TOML.
PATH_KEYS = ("model.path", "data.calibration.path", "data.test.path", "data.train.path",
             "data.validation.path", "output.runs_dir")


@dataclass(frozen=True)
class Knob:
    """One editable config key: how it is shown and parsed."""

    key: str
    label: str
    kind: str  # int | float | floats | str | choice | bool | stage
    choices: tuple[str, ...] = ()
    help: str = ""

    @property
    def wid(self) -> str:
        """Widget id: config keys have dots, ids cannot."""
        return "k-" + self.key.replace(".", "--")


KNOBS: tuple[Knob, ...] = (
    Knob("calibration.samples", "Samples", "int", help="representative samples drawn for PTQ"),
    Knob("calibration.seed", "Seed", "int", help="which samples are drawn"),
    Knob("calibration.draws", "Draws", "int",
         help="PTQ: calibration draws converted; the report gives their spread"),
    Knob("calibration.keep", "Keep", "choice", ("median", "best"),
         help="the draw kept, chosen on calibration items no draw holds"),
    Knob("preprocessing.color", "Colour", "choice", ("gray", "rgb", "bgr")),
    Knob("preprocessing.scale", "Scale", "float", help="pixel × scale"),
    Knob("preprocessing.mean", "Mean", "floats", help="one value or one per channel"),
    Knob("preprocessing.std", "Std", "floats", help="one value or one per channel"),
    Knob("preprocessing.interpolation", "Resize", "choice", ("area", "linear", "nearest", "cubic")),
    Knob("quantization.method", "Method", "choice", ("ptq", "qat")),
    Knob("quantization.granularity", "Weights", "choice", ("per_channel", "per_tensor")),
    Knob("quantization.io_type", "I/O", "choice", ("int8", "uint8", "float32")),
    Knob("quantization.stages.fp16", "FP16", "stage"),
    Knob("quantization.stages.int8", "INT8", "stage"),
    Knob("quantization.allow_float", "allow float", "bool"),
    Knob("quantization.qat.epochs", "Epochs", "int", help="QAT epochs"),
    Knob("quantization.qat.learning_rate", "LR", "float", help="QAT learning rate"),
    Knob("evaluation.profile", "Profile", "choice", ("prototype", "general", "high", "production")),
)
KNOB = {k.key: k for k in KNOBS}


class SettingError(ValueError):
    """A value typed into a knob does not parse; ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


def get(d: dict[str, Any], key: str, default: Any = None) -> Any:
    node: Any = d
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def base_values(cfg: dict[str, Any]) -> dict[str, Any]:
    """Each knob's value in a config dict (``JobConfig.to_dict()``)."""
    out: dict[str, Any] = {}
    stages = list(get(cfg, "quantization.stages", ["fp32", "fp16", "int8"]))
    for k in KNOBS:
        if k.kind == "stage":
            out[k.key] = k.key.rsplit(".", 1)[1] in stages
        else:
            v = get(cfg, k.key)
            out[k.key] = list(v) if isinstance(v, tuple) else v
    return out


def parse(knob: Knob, text: str) -> Any:
    """Text typed in an Input → the TOML value for ``knob``; raises :class:`SettingError`."""
    text = text.strip()
    try:
        if knob.kind == "int":
            return int(text)
        if knob.kind == "float":
            return float(text)
        if knob.kind == "floats":
            return [float(t) for t in text.replace("[", "").replace("]", "").split(",") if t.strip()]
    except ValueError:
        raise SettingError(knob.key, f"{text!r} is not a number") from None
    return text


def show(knob: Knob, value: Any) -> str:
    """A value as typed in an Input."""
    if value is None:
        return ""
    # repr, not a rounded format: the text must parse back to the very same value, or an
    # untouched field would count as a change (1/255 shown as 0.00392157 is not 1/255).
    if knob.kind == "floats":
        return ", ".join(repr(float(v)) for v in value)
    if knob.kind == "float":
        return repr(float(value))
    return str(value)


def changes(base: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """Config keys whose value differs from the loaded config (stage knobs → one list)."""
    out: dict[str, Any] = {}
    for k in KNOBS:
        if k.kind == "stage" or k.key not in current:
            continue
        if current[k.key] != base.get(k.key):
            out[k.key] = current[k.key]
    for key, value in out.items():
        # A cleared field: there is no TOML for "nothing", and the run needs a value.
        if value is None:
            had = base.get(key)
            raise SettingError(key, "is empty: type a value" + (
                f" (the config has {show(KNOB[key], had)})" if had not in (None, "") else ""))
    stage_keys = [k for k in KNOBS if k.kind == "stage"]
    if any(current.get(k.key) != base.get(k.key) for k in stage_keys if k.key in current):
        out["quantization.stages"] = ["fp32"] + [
            k.key.rsplit(".", 1)[1] for k in stage_keys if current.get(k.key)
        ]
    return out


def toml_value(v: Any) -> str:
    """A value as ``--set`` reads it (a TOML value)."""
    import tomlkit  # noqa: PLC0415 - only when launching or saving

    return tomlkit.item(v).as_string()


def set_args(overrides: dict[str, Any]) -> list[str]:
    return [f"{k}={toml_value(v)}" for k, v in overrides.items()]


@dataclass
class Session:
    """What will run: a config file, the knob values it gives, and the user's changes."""

    config_path: Path
    name: str
    base: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # JobConfig.to_dict()
    #: Changes that do not come from a knob (a bare model opened on a sample's template).
    fixed: dict[str, Any] = field(default_factory=dict)
    #: The model summary (engine.inspect_model.model_summary).
    model: dict[str, Any] = field(default_factory=dict)
    #: The config is a sample used as a template, so Save must not overwrite it in place.
    template: bool = False


def default_save_path(session: Session) -> Path:
    """Beside the config; a template's (a sample, a new job's scratch file) in the current
    folder, never inside the installed package or a temporary folder."""
    src = session.config_path
    stem = session.name if session.template else src.stem
    try:
        src.resolve().parent.relative_to(Path.cwd().resolve())
        folder = Path.cwd() if session.template else src.parent
    except ValueError:  # a sample of an installed copy, a run's config.toml elsewhere
        folder = Path.cwd()
    suffix = "" if session.template else "-tuned"
    p, i = folder / f"{stem}{suffix}.toml", 2
    while p.exists():
        p, i = folder / f"{stem}{suffix}-{i}.toml", i + 1
    return p


def save_config(source: Path, dest: Path, overrides: dict[str, Any], note: str = "") -> Path:
    """Write ``source`` with ``overrides`` (dotted keys) applied; comments and layout kept.

    Relative paths in the source stay right when ``dest`` is in another folder: they are
    rewritten relative to ``dest``'s folder. A header comment says where it came from and
    what changed, so the saved file reads like the samples.
    """
    import os

    import tomlkit  # noqa: PLC0415
    from tomlkit.items import Table

    text = source.read_text(encoding="utf-8")
    doc = tomlkit.parse(text)
    src_dir, dst_dir = source.resolve().parent, dest.resolve().parent
    if src_dir != dst_dir:
        for key in PATH_KEYS:
            v = get(doc, key)  # type: ignore[arg-type]
            if isinstance(v, str) and v and not Path(os.path.expanduser(v)).is_absolute():
                target = (src_dir / v).resolve()
                # Relative when the two share a folder (a checkout moves as a whole), else absolute.
                shared = os.path.commonpath([target, dst_dir]) != os.path.sep
                new = os.path.relpath(target, dst_dir) if shared else str(target)
                _set(doc, key, new, tomlkit, Table)
    old = {k: get(doc, k) for k in overrides}  # type: ignore[arg-type]
    for key, value in overrides.items():
        _set(doc, key, value, tomlkit, Table)
    lines = [f"# Tuned in the artq workbench from {source.name} on {time.strftime('%Y-%m-%d')}."]
    for key, value in overrides.items():
        before = "(default)" if old[key] is None else toml_value(old[key])
        lines.append(f"#   {key}: {before} → {toml_value(value)}")
    if note:
        lines.append(f"# {note}")
    lines.append(f"#   artq run {dest.name}")
    header = "\n".join(lines) + "\n#\n"
    body = tomlkit.dumps(doc)
    if dest.exists() and dest.resolve() == source.resolve():
        raise FileExistsError(f"{dest} is the source config; choose another name")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.write_text(header + body, encoding="utf-8")
    tmp.replace(dest)
    return dest


def _set(doc: Any, key: str, value: Any, tomlkit: Any, table_cls: type) -> None:
    parts = key.split(".")
    node = doc
    for part in parts[:-1]:
        if part not in node:
            node[part] = tomlkit.table()
        node = node[part]
        if not isinstance(node, dict | table_cls):
            raise SettingError(key, f"{part} is a value, not a table")
    node[parts[-1]] = value
