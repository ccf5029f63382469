"""Print the zoo as a table: python -m tests.models [NAME...]"""

from __future__ import annotations

import sys
import time

from . import ZOO, accuracy, build, reference_outputs


def main(names: list[str]) -> None:
    for name in names or ZOO:
        t = time.perf_counter()
        z = build(name)
        dt = time.perf_counter() - t
        acc = f"{accuracy(reference_outputs(z)[0], z.labels):.4f}" if z.labels is not None else "-"
        print(f"{name:26} {z.family:13} op{z.opset:<3} pow2={z.pow2!s:5} acc={acc} {dt:5.2f}s "
              f"{' '.join(z.ops)} | tvm: {z.tvm_reason or 'ok'}")


if __name__ == "__main__":
    main(sys.argv[1:])
