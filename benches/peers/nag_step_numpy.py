#!/usr/bin/env python3
"""Time one full-batch NAG step of the two-layer ReLU model, hand-written numpy.

Step = forward (Z = X W^T), loss, explicit gradient G = M^T X, NAG update:
two (n x d x m) GEMMs through numpy's BLAS plus O(n m + m d) elementwise work.
Buffers are preallocated and reused (matmul(out=...)), which is what a careful
numpy user would write. Last line: ms_per_step=<mean ms over K timed steps>.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

args = C.nag_parser(__doc__.splitlines()[1]).parse_args()
C.configure_threads(args.threads)

import numpy as np  # noqa: E402

C.limit_numpy_threads(args.threads)

dt = np.float64 if args.dtype == "f64" else np.float32
X64, y64, W64, a64 = C.make_data(args)
n, d, m = args.n, args.d, args.m
X = np.ascontiguousarray(X64, dtype=dt)
y = y64.astype(dt)
W = np.ascontiguousarray(W64, dtype=dt)
a_s = (a64 / np.sqrt(m)).astype(dt)  # a_r / sqrt(m)
lr = dt(args.lr)
beta = dt(args.momentum)

Z = np.empty((n, m), dt)   # pre-activations X W^T
Mx = np.empty((n, m), dt)  # M
G = np.empty((m, d), dt)   # gradient
buf = np.zeros((m, d), dt)  # momentum buffer
tmp = np.empty((m, d), dt)
u = np.empty(n, dt)


def step():
    np.matmul(X, W.T, out=Z)                      # 2 n m d
    np.greater(Z, 0, out=Mx)                      # S as 0/1
    np.maximum(Z, 0, out=Z)                       # relu(Z)
    np.matmul(Z, a_s, out=u)                      # u = relu(Z) a / sqrt(m)
    r = u - y
    loss = 0.5 * float(r @ r)
    np.multiply(Mx, r[:, None], out=Mx)
    np.multiply(Mx, a_s[None, :], out=Mx)         # M_ir = r_i S_ir a_r / sqrt(m)
    np.matmul(Mx.T, X, out=G)                     # G = M^T X, 2 n m d
    # NAG (PyTorch/optax convention): buf = beta buf + G; W -= lr (G + beta buf)
    np.multiply(buf, beta, out=buf)
    np.add(buf, G, out=buf)
    np.multiply(buf, beta, out=tmp)
    np.add(G, tmp, out=G)
    np.multiply(G, lr, out=G)
    np.subtract(W, G, out=W)
    return loss


C.header("nag_step_numpy", args, f"lr={args.lr} momentum={args.momentum}")
print(f"# numpy {np.__version__}; BLAS: {C.blas_info()}")
print("# gradient: explicit formula G = M^T X (no autodiff in numpy)")

losses = []
for t in range(args.warmup):
    losses.append(step())
times = []
for t in range(args.steps):
    t0 = C.now()
    losses.append(step())
    times.append(C.now() - t0)

if args.print_losses:
    for t, l in enumerate(losses):
        print(f"loss {t} {l!r}")
print(f"# loss: first {losses[0]:.10g}, last {losses[-1]:.10g} after {len(losses)} steps")
C.report_times(times, args, flops=C.weight_space_flops(n, d, m))
