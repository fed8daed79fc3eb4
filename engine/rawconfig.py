"""A job config as its TOML holds it: read, with ``--set`` overrides applied and paths made
absolute, before any validation.

Relative paths in the file are taken from the file's folder, those given with ``--set``
from the current directory. No pydantic here: ``artq run`` reads the raw config this way
to decide, as it starts, whether a TensorFlow child is worth starting
(:mod:`engine.backends.prewarm`); :mod:`engine.config` validates it.
"""

from __future__ import annotations

import copy
import os
import tomllib
from pathlib import Path
from typing import Any

from . import custom_objects
from .errors import ConfigError

_PATH_KEYS = [("model", "path"), ("model", "weights"), ("output", "runs_dir")]
_DATA_SPLITS = ("calibration", "test", "train", "validation")


def parse_value(text: str) -> Any:
    """Parse a ``--set`` value as a TOML value; bare words stay strings.

    ``50`` → 50, ``0.5`` → 0.5, ``true`` → True, ``[1, 2]`` → [1, 2], ``qat`` → "qat".
    """
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.c = value`` in a raw config dict, creating tables on the way."""
    parts = key.split(".")
    if not all(parts):
        raise ConfigError("not a key path; write it like calibration.samples", key=key)
    node = raw
    for i, part in enumerate(parts[:-1]):
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            where = ".".join(parts[: i + 1])
            raise ConfigError(f"is a value, not a table, so {key} cannot be set", key=where)
        node = nxt
    node[parts[-1]] = value


def resolve_paths(raw: dict[str, Any], base: Path) -> None:
    """Make every path the config holds absolute, relative ones taken from ``base``: the
    model, its weights, custom objects and PyTorch file, the runs folder, each split's data
    and a target given as a file."""

    def fix(table: Any, key: str) -> None:
        if isinstance(table, dict) and isinstance(table.get(key), str) and table[key]:
            p = Path(os.path.expanduser(table[key]))
            table[key] = str(p if p.is_absolute() else (base / p).resolve())

    for section, key in _PATH_KEYS:
        fix(raw.get(section), key)
    model = raw.get("model")
    if isinstance(model, dict) and isinstance(model.get("torch"), str) and model["torch"]:
        # "models.py:build": the file part is a path like the others.
        file, sep, name = model["torch"].rpartition(":")
        if sep and file:
            holder = {"p": file}
            fix(holder, "p")
            model["torch"] = f"{holder['p']}:{name}"
    data = raw.get("data")
    if isinstance(data, dict):
        for split in _DATA_SPLITS:
            fix(data.get(split), "path")
    custom_objects.resolve(raw.get("model"), base)
    analysis = raw.get("analysis")
    # A target given as a path (not a bundled name) is relative to the config too.
    if isinstance(analysis, dict) and str(analysis.get("target", "")).endswith(".toml"):
        fix(analysis, "target")


def load_raw(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a config file into a raw dict with paths made absolute."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            "config file not found" if not p.exists() else "is not a file",
            "give the path to a job TOML, for example sample_configs/digits_ptq.toml",
            file=str(path),
        )
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError("is not UTF-8 text", "a job config is a TOML file", file=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"is not valid TOML: {exc}", file=str(path)) from None
    except OSError as exc:  # no read permission, an I/O error, a file vanishing meanwhile
        raise ConfigError(f"cannot read ({exc.strerror or exc})",
                          "check the file's permissions", file=str(path)) from None
    resolve_paths(raw, p.resolve().parent)
    out = raw.setdefault("output", {})
    if isinstance(out, dict) and "runs_dir" not in out:
        out["runs_dir"] = str(Path.cwd() / "runs")
    return raw


def apply_overrides(
    raw: dict[str, Any],
    overrides: dict[str, Any] | list[str] | None,
    base: Path | None = None,
) -> None:
    if not overrides:
        return
    items: list[tuple[str, Any]]
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        items = []
        for text in overrides:
            if "=" not in text:
                raise ConfigError(
                    f"--set needs KEY=VALUE, got {text!r}", "for example --set calibration.samples=50"
                )
            k, v = text.split("=", 1)
            items.append((k.strip(), parse_value(v.strip())))
    for key, value in items:
        apply_override(raw, key, copy.deepcopy(value))
    if base is not None:
        resolve_paths(raw, base)
