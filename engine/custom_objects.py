"""``model.custom_objects``: where the user's custom Keras layers are defined (no TensorFlow).

``"layers.py:CUSTOM_OBJECTS"`` names a Python file (relative to the config, like
``model.path``) and the dict in it; ``"package.module:CUSTOM_OBJECTS"`` a module found on the
current directory or PYTHONPATH. The dict maps the class names the model file holds to the
classes (or functions). The TensorFlow child imports it — running the user's code, as the
training script did — and hands it to Keras (:mod:`engine.backends.tf.custom_layers`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .errors import ConfigError, ModelError

KEY = "model.custom_objects"
FORM = ('write it as "layers.py:CUSTOM_OBJECTS" (a Python file and the dict in it) or '
        '"package.module:CUSTOM_OBJECTS"')


def is_code_path(where: str) -> bool:
    """Whether the part before the colon is a file path (else a module name)."""
    return where.endswith(".py") or "/" in where or os.sep in where


def split(spec: str) -> tuple[str, str]:
    """``"where:NAME"`` → ``(where, NAME)``; the last colon splits (a Windows drive has one)."""
    where, _, name = spec.rpartition(":")
    return where, name


def resolve(model: Any, base: Path) -> None:
    """Make a relative file path in the raw ``[model]`` table absolute, from ``base``."""
    spec = model.get("custom_objects") if isinstance(model, dict) else None
    if not isinstance(spec, str) or ":" not in spec:
        return
    where, name = split(spec)
    p = Path(os.path.expanduser(where))
    if is_code_path(where) and not p.is_absolute():
        model["custom_objects"] = f"{(base / p).resolve()}:{name}"


def check(spec: str, source: str) -> None:
    """The spec's form: a file or module, a colon, a Python name (config validation)."""
    if not spec:
        return  # not set: built-in layers only
    where, name = split(spec)
    if not where or not name:
        raise ConfigError(f"{spec!r} does not say where the dict is and its name", FORM,
                          file=source, key=KEY)
    if not name.isidentifier():
        raise ConfigError(f"{name!r} is not a Python name", FORM, file=source, key=KEY)
    if not is_code_path(where) and not all(p.isidentifier() for p in where.split(".")):
        raise ConfigError(f"{where!r} is neither a .py file nor a module name", FORM,
                          file=source, key=KEY)


def check_file(spec: str) -> None:
    """Before any work: a file the spec names exists (a module is looked up by the child)."""
    where, name = split(spec)
    if is_code_path(where) and not Path(where).is_file():
        raise ModelError(f"{KEY}: {where} not found (the file that should define {name})",
                         "give the .py file's path: relative to the config file, or with "
                         "--set to the current directory")


def missing_hint(cls: str, spec: str) -> str:
    """What to do about an unregistered layer class, with or without a spec set."""
    # Keras 3 may name a registered class "package>Name": the key keeps it, the code not.
    var = cls.rsplit(">", 1)[-1].rsplit(".", 1)[-1]
    if spec:
        where, name = split(spec)
        return (f"add {cls!r}: {var} to the dict {name} in {where} ({KEY} = \"{spec}\"), "
                "with the class defined or imported there")
    return (f"define or import it in a Python file with CUSTOM_OBJECTS = {{{cls!r}: {var}}} and "
            f"set {KEY} = \"that_file.py:CUSTOM_OBJECTS\"; artq runs that file, as your "
            "training script does")


def unknown_layer_error(path: str, text: str, custom_objects: str = "") -> ModelError | None:
    """Keras's "unknown layer" failure as one line naming the class and how to register it
    (``model.custom_objects``), or None for other errors."""
    m = re.search(r"Unknown layer: '?([\w.>]+)'?|Could not locate class '([\w.>]+)'", text)
    if m is None:
        return None
    cls = m.group(1) or m.group(2)
    if custom_objects:
        where, name = split(custom_objects)
        return ModelError(
            f"{path}: the model uses the custom layer class {cls!r}, which the dict {name} in "
            f"{where} (model.custom_objects) does not name", missing_hint(cls, custom_objects))
    return ModelError(
        f"{path}: the model uses the custom layer class {cls!r}, which is not registered with "
        f"Keras ({KEY} is not set)",
        missing_hint(cls, ""),
    )
