"""``mcuc quantize``: post-training quantization of float ONNX models to power-of-two QDQ models.

The entry point is ``compiler.quantize.ptq.quantize(model, calibration, Options(...))``; the flow
is described at the top of ptq.py and in docs/quantize.md. Nothing is imported here so that the
``mcuc`` command line, which registers ``cli.quantize``, starts without loading onnx.
"""
