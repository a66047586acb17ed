"""Time of ``import brevitas`` beyond ``import torch``.

Each measurement is a fresh interpreter: the median over several runs of
(torch + brevitas) minus the median of torch alone. Target: under 0.15 s.

    python bench/import_time.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

TARGET_S = 0.15

_TIMER = (
    "import time; t0 = time.perf_counter(); {stmt}; "
    "print(time.perf_counter() - t0)"
)


def _measure(stmt: str, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        res = subprocess.run(
            [sys.executable, "-c", _TIMER.format(stmt=stmt)], capture_output=True, text=True, check=True
        )
        out.append(float(res.stdout.strip().splitlines()[-1]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    torch_only: list[float] = []
    both: list[float] = []
    for _ in range(args.runs):  # interleave so machine noise hits both alike
        torch_only += _measure("import torch", 1)
        both += _measure("import torch; import brevitas", 1)
    base, total = statistics.median(torch_only), statistics.median(both)
    extra = total - base
    print(f"import torch            median {base:.3f} s  (n={args.runs})")
    print(f"import torch + brevitas median {total:.3f} s")
    print(f"brevitas beyond torch   {extra:.3f} s   target < {TARGET_S:.2f} s   "
          f"{'MET' if extra < TARGET_S else 'MISSED'}   ratio {total / base:.3f}x torch alone")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
