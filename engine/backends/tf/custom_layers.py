"""Import the user's ``model.custom_objects`` dict in the TensorFlow child.

Importing runs the user's own code (the file defines Keras classes, so it imports Keras or
TensorFlow itself): that is why it happens here, in the child, and only when the key is set.
Every failure is one line naming the key and the file: a file or module that is not there,
a name that is not in it, a value that is not a dict, the file's own error.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from ...custom_objects import FORM, KEY, is_code_path, split
from ...errors import ModelError

_loaded: dict[str, dict[str, Any]] = {}


def load_custom_objects(spec: str) -> dict[str, Any] | None:
    """The dict ``spec`` names (``"file.py:NAME"`` or ``"module:NAME"``), or None when unset."""
    if not spec:
        return None
    if spec not in _loaded:
        where, name = split(spec)
        module, shown = _import(where)
        if not hasattr(module, name):
            raise ModelError(f"{KEY}: {shown} defines no {name}",
                             f"define {name} = {{'ClassName': ClassName, ...}} there, or name "
                             "the dict it has")
        value = getattr(module, name)
        if not isinstance(value, dict):
            raise ModelError(
                f"{KEY}: {name} in {shown} is a {type(value).__name__}, not a dict of "
                "name → class", f"make {name} a dict such as {{'Blur': Blur}}")
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise ModelError(f"{KEY}: {name} in {shown} has a key that is not a string ({bad[0]!r})",
                             "key each class by the class name the model file holds")
        _loaded[spec] = dict(value)
    return _loaded[spec]


def _import(where: str) -> tuple[ModuleType, str]:
    """The module and how to name it in a message (its file)."""
    if is_code_path(where):
        path = Path(where)
        if not path.is_file():
            raise ModelError(f"{KEY}: {path} not found (the file that should define the dict)",
                             "give the .py file's path: relative to the config file, or with "
                             "--set to the current directory")
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
        mod_name = f"artq_custom_{path.stem}_{digest}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise ModelError(f"{KEY}: {path} cannot be imported as Python", FORM)
        module = importlib.util.module_from_spec(spec)
        # Its own imports of neighbouring files work as they do when the user runs it.
        sys.path.insert(0, str(path.resolve().parent))
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - the user's code may raise anything
            sys.modules.pop(mod_name, None)
            raise ModelError(f"{KEY}: running {path} failed: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:200] if str(exc) else ''}",
                             "fix that file so `python " + path.name + "` runs") from exc
        return module, str(path)
    try:
        module = importlib.import_module(where)
    except ModuleNotFoundError as exc:
        if exc.name and (where == exc.name or where.startswith(exc.name + ".")):
            raise ModelError(
                f"{KEY}: no module named {where} (looked in the current directory and "
                "PYTHONPATH)", 'give the .py file\'s path instead: "path/to/layers.py:NAME"') from None
        raise ModelError(f"{KEY}: importing {where} failed: {exc}",
                         "install what that module imports, or fix the module") from exc
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{KEY}: importing {where} failed: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200] if str(exc) else ''}",
                         "fix that module so it imports") from exc
    return module, str(getattr(module, "__file__", None) or where)
