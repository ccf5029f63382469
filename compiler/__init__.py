"""mcuc: an ahead-of-time compiler from quantized ONNX models to C for microcontrollers."""

__version__ = "0.1.0"
