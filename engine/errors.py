"""One error root for everything a user can meet.

Every error carries a one-line message that names the file, key or layer at fault and a
hint that says what to do. Front-ends print ``str(err)`` (message and hint) and map the
class to an exit code; a Python traceback reaching a user is a bug.
"""

from __future__ import annotations


class EngineError(Exception):
    """Root of artq's errors. ``exit_code`` is what the CLI returns for it."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def to_dict(self) -> dict[str, str]:
        return {"type": type(self).__name__, "message": self.message, "hint": self.hint}


class UserInputError(EngineError):
    """Something the user gave us is wrong: config, file or data. Exit code 2."""

    exit_code = 2


class ConfigError(UserInputError):
    """A job config key is unknown, mistyped or out of range."""

    def __init__(self, message: str, hint: str = "", *, file: str = "", key: str = "") -> None:
        where = f"{file}: " if file else ""
        what = f"{key}: " if key else ""
        super().__init__(f"{where}{what}{message}", hint)
        self.file = file
        self.key = key
        self.problem = message  # without file and key, to say it again elsewhere


class InputFileError(UserInputError):
    """A model or data file is missing, unreadable or not what its name says."""

    def __init__(self, path: str, problem: str, hint: str = "") -> None:
        super().__init__(f"{path}: {problem}", hint)
        self.path = path


class DataError(UserInputError):
    """Data loaded but does not fit the job (shapes, labels, counts)."""


class ModelError(UserInputError):
    """A model cannot be used as given (unsafe layer, unsupported format, bad shape)."""


class ConversionError(EngineError):
    """The TFLite converter failed or crashed."""


class EvaluationError(EngineError):
    """A converted model could not be evaluated."""


class CancelledError(EngineError):
    """The user cancelled the job. Exit code 3."""

    exit_code = 3

    def __init__(self, message: str = "cancelled by the user", hint: str = "") -> None:
        super().__init__(message, hint)


class VerdictFailed(EngineError):
    """The verdict fails (``--strict``: FAIL, the whole interval outside the bar;
    ``--strict-confident``: also not resolved at this test-set size). Exit code 4."""

    exit_code = 4


class TFLiteReadError(UserInputError):
    """A .tflite file is truncated, corrupt or not a TFLite model."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(
            f"{path}: {problem}",
            "pass a .tflite file written by TFLite's converter (artq run writes int8.tflite)",
        )
        self.path = path


class OnnxReadError(UserInputError):
    """A .onnx file is truncated, corrupt or not an ONNX model."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(
            f"{path}: {problem}",
            "pass a .onnx file written by an ONNX exporter (torch.onnx.export) or by artq run "
            "(int8.onnx)",
        )
        self.path = path


class TargetError(UserInputError):
    """A target description is missing or invalid."""


class OutputMatchError(EvaluationError):
    """A converted model's outputs cannot be matched to the model's own, by name and shape."""
