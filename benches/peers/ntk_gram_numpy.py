#!/usr/bin/env python3
"""Time the empirical NTK Gram matrix H = (X X^T) o (S S^T) / m in numpy.

S = 1[X W^T > 0] (n x m, as 0/1 in the working dtype). One call computes
X W^T (2 n m d flops), X X^T (2 n^2 d; plain GEMM, no syrk) and S S^T
(2 n^2 m), then the elementwise product -- the formula of src/model.rs (TwoLayerReLU::ntk_gram)
as a numpy user would write it. Last line: ms_per_call=<mean ms>.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

p = C.base_parser(__doc__.splitlines()[1], steps_default=5, warmup_default=1)
p.add_argument("--check", action="store_true",
               help="also check H against the explicit Jacobian J J^T (only for small n*m*d)")
args = p.parse_args()
C.configure_threads(args.threads)

import numpy as np  # noqa: E402

C.limit_numpy_threads(args.threads)

dt = np.float64 if args.dtype == "f64" else np.float32
X64, y64, W64, a64 = C.make_data(args)
n, d, m = args.n, args.d, args.m
X = np.ascontiguousarray(X64, dtype=dt)
W = np.ascontiguousarray(W64, dtype=dt)


def ntk_gram(X, W):
    S = (X @ W.T > 0).astype(X.dtype)
    H = X @ X.T
    H *= S @ S.T
    H /= X.dtype.type(W.shape[0])
    return H


C.header("ntk_gram_numpy", args)
print(f"# numpy {np.__version__}; BLAS: {C.blas_info()}")

for _ in range(args.warmup):
    H = ntk_gram(X, W)
times = []
for _ in range(args.steps):
    t0 = C.now()
    H = ntk_gram(X, W)
    times.append(C.now() - t0)

print(f"# H: shape {H.shape}, trace {float(np.trace(H)):.10g}, mean {float(H.mean()):.10g}, "
      f"symmetric max|H-H^T| {float(np.abs(H - H.T).max()):.3g}")
if args.check:
    if n * m * d > 5e7:
        print("# --check skipped: n*m*d too large to form J")
    else:
        S = (X64 @ W64.T > 0).astype(np.float64)
        J = ((S * (a64 / np.sqrt(m))[None, :])[:, :, None] * X64[:, None, :]).reshape(n, m * d)
        err = np.abs(J @ J.T - H).max() / np.abs(H).max()
        print(f"# check: max|J J^T - H| / max|H| = {err:.3g}")
flops = 2.0 * n * m * d + 2.0 * n * n * d + 2.0 * n * n * m
C.report_times(times, args, label="ms_per_call", flops=flops)
