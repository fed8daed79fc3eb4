"""TFLite flatbuffer reading without TensorFlow: model.py holds the types, reader.py the parse."""

from .model import (
    Model,
    Operator,
    Quantization,
    SignatureDef,
    Subgraph,
    Tensor,
)
from .reader import read_model, read_model_bytes

__all__ = [
    "Model",
    "Operator",
    "Quantization",
    "SignatureDef",
    "Subgraph",
    "Tensor",
    "read_model",
    "read_model_bytes",
]
