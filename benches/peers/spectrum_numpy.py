#!/usr/bin/env python3
"""Time numpy's symmetric eigensolvers on the infinite-width NTK Gram matrix.

H_inf of n unit-norm rows in R^d (the crate's `ntk::infinite_width_gram`
formula: ||x_i|| ||x_j|| (pi - theta_ij) cos(theta_ij) / (2 pi)); then
`np.linalg.eigvalsh` (what `ntk::Spectrum::of` computes) or `np.linalg.eigh`
(`ntk::eigendecomposition`), chosen with --kind. Last line:
ms_per_call=<mean ms>.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

p = C.base_parser(__doc__.splitlines()[1], steps_default=3, warmup_default=1, d=100)
p.add_argument("--kind", choices=["eigvalsh", "eigh"], default="eigvalsh")
args = p.parse_args()
C.configure_threads(args.threads)

import numpy as np  # noqa: E402

C.limit_numpy_threads(args.threads)

X64, _, _, _ = C.make_data(args)
X = X64 / np.linalg.norm(X64, axis=1, keepdims=True)
G = np.clip(X @ X.T, -1.0, 1.0)
H = (np.pi - np.arccos(G)) * G / (2 * np.pi)
solve = np.linalg.eigvalsh if args.kind == "eigvalsh" else np.linalg.eigh

C.header("spectrum_numpy", args, extra=f" kind={args.kind}")
print(f"# numpy {np.__version__}; BLAS: {C.blas_info()}")
for _ in range(args.warmup):
    solve(H)
times = []
for _ in range(args.steps):
    t0 = C.now()
    out = solve(H)
    times.append(C.now() - t0)
values = out if args.kind == "eigvalsh" else out[0]
print(f"# lambda_min {values[0]:.10g} lambda_max {values[-1]:.10g}")
C.report_times(times, args, label="ms_per_call")
