"""ONNX model reading without onnxruntime or TensorFlow: the ``onnx`` package's protobuf
schema only. reader.py builds the same operator view as engine.tflite (engine.tflite.model's
types), so the NPU analysis reads an ONNX QDQ model as it reads an INT8 ``.tflite``."""

from .reader import read_onnx, read_onnx_bytes

__all__ = ["read_onnx", "read_onnx_bytes"]
