"""The user's model: their own Python file, imported by path, and a state_dict.

``model.torch = "models.py:build"`` names a file and a callable returning an ``nn.Module``.
artq imports that file as any training script would (it runs the user's code, with their
rights); the weights are read with ``torch.load(..., weights_only=True)``, which loads
tensors and plain containers only and never unpickles arbitrary objects.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from pathlib import Path
from typing import Any

from ...errors import InputFileError, ModelError
from .lib import require_torch


def split_spec(spec: str) -> tuple[str, str]:
    """``"path/models.py:build"`` → (path, callable name); no import, no torch."""
    path, sep, name = spec.rpartition(":")
    if not sep or not path or not name.isidentifier():
        raise ModelError(f"model.torch = {spec!r} is not FILE.py:CALLABLE",
                         'write it like model.torch = "models.py:build"')
    return path, name


def _where(exc: BaseException, path: str) -> str:
    """The line of the user's file the error came from, when it did."""
    for fs in reversed(traceback.extract_tb(exc.__traceback__)):
        if Path(fs.filename).resolve() == Path(path).resolve():
            return f" (line {fs.lineno})"
    return ""


def import_builder(spec: str) -> Any:
    """The callable ``spec`` names, from the user's file imported by path."""
    path, name = split_spec(spec)
    p = Path(path)
    if not p.is_file():
        raise InputFileError(path, "not found", "model.torch names a Python file and a "
                             'callable in it: "models.py:build"')
    mod_name = f"artq_user_model_{abs(hash(str(p.resolve())))}"
    loader_spec = importlib.util.spec_from_file_location(mod_name, p)
    if loader_spec is None or loader_spec.loader is None:
        raise InputFileError(path, "cannot be imported as Python", "give a .py file")
    module = importlib.util.module_from_spec(loader_spec)
    # Its own folder first, so the file's sibling imports work as in the user's project.
    sys.path.insert(0, str(p.resolve().parent))
    sys.modules[mod_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - any failure of user code is reported as one line
        raise ModelError(f"{path}: importing it failed{_where(exc, path)}: "
                         f"{type(exc).__name__}: {exc}",
                         "the file must import cleanly, as `python -c 'import ...'` would") from None
    finally:
        sys.path.remove(str(p.resolve().parent))
    fn = getattr(module, name, None)
    if fn is None or not callable(fn):
        found = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))
        raise ModelError(f"{path}: has no callable {name!r}",
                         f"callables there: {', '.join(found[:8]) or 'none'}")
    return fn


def build_module(spec: str, weights: str) -> Any:
    """The user's ``nn.Module`` with ``weights`` loaded, in eval mode."""
    torch = require_torch()
    path, name = split_spec(spec)
    fn = import_builder(spec)
    try:
        module = fn()
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{path}: {name}() failed{_where(exc, path)}: {type(exc).__name__}: {exc}",
                         f"{name}() is called with no arguments and must return an nn.Module") from None
    if not isinstance(module, torch.nn.Module):
        raise ModelError(f"{path}: {name}() returned a {type(module).__name__}, not an nn.Module",
                         f"make {name}() return the model (an nn.Module)")
    if weights:
        load_weights(module, weights)
    return module.eval()


def load_weights(module: Any, weights: str) -> None:
    """Load a state_dict with ``weights_only=True``; name what does not fit."""
    torch = require_torch()
    p = Path(weights)
    if not p.is_file():
        raise InputFileError(weights, "not found", "model.weights is the state_dict file "
                             "(torch.save(model.state_dict(), 'model.pt'))")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling refused or a damaged file
        text = str(exc).strip().splitlines()[0][:200]
        raise InputFileError(weights, f"cannot be read as tensors only (weights_only=True): {text}",
                             "save the state_dict, not the model object: "
                             "torch.save(model.state_dict(), 'model.pt')") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # a training checkpoint holding it
    if not isinstance(state, dict):
        raise InputFileError(weights, f"holds a {type(state).__name__}, not a state_dict",
                             "torch.save(model.state_dict(), 'model.pt')")
    missing, unexpected = [], []
    try:
        res = module.load_state_dict(state, strict=False)
        missing, unexpected = list(res.missing_keys), list(res.unexpected_keys)
    except RuntimeError as exc:  # shape mismatches
        first = [ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln][:1]
        raise ModelError(f"{weights}: does not fit the model built by model.torch: "
                         f"{first[0] if first else str(exc).splitlines()[0]}",
                         "the weights must come from the same architecture") from None
    if missing or unexpected:
        what = (f"missing {', '.join(missing[:3])}" if missing else
                f"unexpected {', '.join(unexpected[:3])}")
        n = len(missing) + len(unexpected)
        raise ModelError(f"{weights}: does not fit the model built by model.torch ({what}"
                         f"{'…' if n > 3 else ''}; {n} key(s))",
                         "the weights must come from the same architecture")


def count_params(module: Any) -> int:
    return int(sum(p.numel() for p in module.parameters()))
