#!/usr/bin/env python3
"""Time the loss and its gradient of the two-layer ReLU model in numpy.

One call: Z = X W^T, u = relu(Z) a / sqrt(m), r = u - y, loss = 1/2 r.r,
M = (r[:, None] * (Z > 0)) * a / sqrt(m), G = M^T X -- 4 n m d flops, the
crate's `TwoLayerReLU::loss_and_gradient`. Last line: ms_per_call=<mean ms>.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

p = C.base_parser(__doc__.splitlines()[1], steps_default=5, warmup_default=1)
args = p.parse_args()
C.configure_threads(args.threads)

import numpy as np  # noqa: E402

C.limit_numpy_threads(args.threads)

dt = np.float64 if args.dtype == "f64" else np.float32
X64, y64, W64, a64 = C.make_data(args)
X = np.ascontiguousarray(X64, dtype=dt)
W = np.ascontiguousarray(W64, dtype=dt)
y = y64.astype(dt)
a = a64.astype(dt)
scale = dt(1.0 / np.sqrt(args.m))


def loss_and_gradient(X, W):
    Z = X @ W.T
    r = np.maximum(Z, 0) @ a * scale - y
    M = (Z > 0) * (r[:, None] * (a * scale)[None, :])
    return 0.5 * float(r @ r), M.T @ X


C.header("loss_grad_numpy", args)
print(f"# numpy {np.__version__}; BLAS: {C.blas_info()}")
for _ in range(args.warmup):
    loss, G = loss_and_gradient(X, W)
times = []
for _ in range(args.steps):
    t0 = C.now()
    loss, G = loss_and_gradient(X, W)
    times.append(C.now() - t0)
print(f"# loss {loss:.10g}, |G|_F {float(np.linalg.norm(G)):.10g}")
C.report_times(times, args, label="ms_per_call", flops=4.0 * args.n * args.m * args.d)
