"""TFLite flatbuffer reading without TensorFlow."""

from .reader import (
    Model,
    Operator,
    Quantization,
    SignatureDef,
    Subgraph,
    Tensor,
    read_model,
    read_model_bytes,
)

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
