#!/usr/bin/env python3
"""Measure numpy's GEMM rate (GFLOP/s) in f64 and f32 at the shapes of the NAG step.

Main shape: (n x d) . (d x m) -- the forward product X W^T, with W stored
m x d row-major as in the step scripts (numpy passes W.T to BLAS as a
transposed operand, no copy), 2 n d m flops. Also reported (diagnostic): the
gradient product M^T X, (m x n) . (n x d) with M stored n x m. Each product
is run --warmup times untimed, then --reps times; the rate is computed from
the best (minimum) time, and the median is printed as a diagnostic.
Last line: gflops_f64=<x> gflops_f32=<y> (forward shape, best of reps).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

import argparse  # noqa: E402

p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
p.add_argument("--n", type=int, default=1000)
p.add_argument("--d", type=int, default=3072)
p.add_argument("--m", type=int, default=4096)
p.add_argument("--reps", type=int, default=5)
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--seed", type=int, default=0)
args = p.parse_args()
C.configure_threads(args.threads)

import statistics  # noqa: E402

import numpy as np  # noqa: E402

C.limit_numpy_threads(args.threads)

n, d, m = args.n, args.d, args.m
print(f"# gemm_rate: n={n} d={d} m={m} reps={args.reps} warmup={args.warmup} threads={args.threads}")
print(f"# nproc={os.cpu_count()}, affinity={len(os.sched_getaffinity(0))} cpus")
print("# " + C.openblas_env_note())
print(f"# numpy {np.__version__}; BLAS: {C.blas_info()}")

rng = np.random.default_rng(args.seed)
X64 = rng.standard_normal((n, d))
W64 = rng.standard_normal((m, d))
M64 = rng.standard_normal((n, m))
flops = 2.0 * n * d * m


def rate(f):
    for _ in range(args.warmup):
        f()
    ts = []
    for _ in range(args.reps):
        t0 = C.now()
        f()
        ts.append(C.now() - t0)
    return flops / min(ts) / 1e9, flops / statistics.median(ts) / 1e9, min(ts)


best = {}
for name, dt in (("f64", np.float64), ("f32", np.float32)):
    X, W, M = X64.astype(dt), W64.astype(dt), M64.astype(dt)
    Z = np.empty((n, m), dt)
    G = np.empty((m, d), dt)
    g_best, g_med, t = rate(lambda: np.matmul(X, W.T, out=Z))
    print(f"# {name} X W^T  ({n}x{d})({d}x{m}): best {g_best:.1f} GFLOP/s ({1e3 * t:.1f} ms), median {g_med:.1f}")
    best[name] = g_best
    g_best, g_med, t = rate(lambda: np.matmul(M.T, X, out=G))
    print(f"# {name} M^T X  ({m}x{n})({n}x{d}): best {g_best:.1f} GFLOP/s ({1e3 * t:.1f} ms), median {g_med:.1f}")
print(f"gflops_f64={best['f64']:.2f} gflops_f32={best['f32']:.2f}")
