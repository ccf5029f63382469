"""Write the digits example: the trained float CNN, its int8 QDQ quantization and the test split.

    python examples/digits/make_model.py --out DIR

DIR receives digits_cnn_float.onnx, digits_cnn_int8.onnx (onnxruntime quantize_static, QDQ, int8
activations and per-channel int8 weights), digits_test_x.npy (float32, N x 1 x 8 x 8, in [0, 1]) and
digits_test_y.npy (int64 labels). The models come from the test zoo (tests/models), which trains the
CNN with torch once and caches it under MCUC_TEST_CACHE (default /tmp/mcuc-test-cache).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.models import accuracy, build, digits_split, run_ort  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="output directory")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    _, _, x_test, y_test = digits_split()
    float_model = build("float_cnn").model
    int8_model = build("ort_qdq_cnn_s8_pc").model
    (args.out / "digits_cnn_float.onnx").write_bytes(float_model.SerializeToString())
    (args.out / "digits_cnn_int8.onnx").write_bytes(int8_model.SerializeToString())
    np.save(args.out / "digits_test_x.npy", np.ascontiguousarray(x_test, np.float32))
    np.save(args.out / "digits_test_y.npy", np.ascontiguousarray(y_test))

    print(f"float accuracy:    {accuracy(run_ort(float_model, x_test)[0], y_test):.4f}")
    print(f"ORT int8 accuracy: {accuracy(run_ort(int8_model, x_test)[0], y_test):.4f}")
    print(f"wrote {len(y_test)} test samples and 2 models to {args.out}")


if __name__ == "__main__":
    main()
