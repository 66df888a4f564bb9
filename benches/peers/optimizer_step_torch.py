#!/usr/bin/env python3
"""Time one PyTorch SGD Nesterov optimizer step (update only) on the CPU.

The update alone, no model: torch.optim.SGD(lr=0.01, momentum=0.9,
nesterov=True, dampening=0).step() on parameters whose .grad is filled once
with random values and kept fixed (no zero_grad, no backward). Cases:

* one parameter tensor of N entries, N in --sizes (default 1e5 1e6 1e7), for
  the kernels foreach=False (per-tensor loop), foreach=True (_foreach_* ops)
  and fused=True (one fused kernel; skipped with a note if refused);
* a set of --tensors (default 100) tensors of equal size totalling
  --set-total (default 1e7) entries, for foreach=True and fused=True;
* dtypes --dtypes (default f32 f64).

Method per case: --warmup (5) untimed steps (the first one allocates the
momentum buffers), then --repeats (7) timings of a batch of consecutive steps
(--batch-small, 20, for N <= 1e6 entries in total, else --batch-large, 5),
each batch timed with time.perf_counter; a repeat's ms per step is its batch
time / batch. Printed: median, min and max over the repeats, and
GBps_eff = 5 * N * itemsize / median (the minimum traffic of the step: read
p, g, buf; write p, buf).

Memory-copy reference in the same run: numpy np.copyto of a --copy-n (1e7)
entry f64 array into another, bytes = 2 * 8 * N per copy, same warm-up /
repeat / batch scheme; GBps from the median (and GBps_best from the min).

Threads (--threads T, default 2): OMP/MKL/OpenBLAS env vars before import,
torch.set_num_threads(T), threadpoolctl for numpy. Output, one line per case:

    torch nesterov n=<N> tensors=<k> dtype=<f32|f64> variant=<foreach_false|foreach|fused> \
        batch=<B> median_ms=<x> min_ms=<x> max_ms=<x> GBps_eff=<x>
    torch nesterov n=<N> tensors=<k> dtype=<..> variant=fused skipped=<reason>
    copy n=<N> dtype=f64 batch=<B> median_ms=<x> min_ms=<x> max_ms=<x> GBps=<x> GBps_best=<x>

(n is the total number of entries; ms are per step / per copy.) Lines
starting with '#' are diagnostics.
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
p.add_argument("--sizes", type=float, nargs="+", default=[1e5, 1e6, 1e7],
               help="entries of the single parameter tensor")
p.add_argument("--dtypes", nargs="+", choices=("f32", "f64"), default=["f32", "f64"])
p.add_argument("--tensors", type=int, default=100, help="tensors in the parameter-set case (0: skip)")
p.add_argument("--set-total", type=float, default=1e7, help="total entries of the parameter set")
p.add_argument("--copy-n", type=float, default=1e7, help="entries of the f64 copy (0: skip)")
p.add_argument("--warmup", type=int, default=5, help="untimed steps before the repeats")
p.add_argument("--repeats", type=int, default=7, help="timed batches per case")
p.add_argument("--batch-small", type=int, default=20, help="steps per batch for N <= 1e6")
p.add_argument("--batch-large", type=int, default=5, help="steps per batch for N > 1e6")
p.add_argument("--lr", type=float, default=0.01)
p.add_argument("--momentum", type=float, default=0.9)
p.add_argument("--threads", type=int, default=2, help="intra-op threads T")
p.add_argument("--seed", type=int, default=0)
args = p.parse_args()
C.configure_threads(args.threads)

import platform  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(args.threads)
C.limit_numpy_threads(args.threads)

DT = {"f32": torch.float32, "f64": torch.float64}
VARIANTS = {
    "foreach_false": dict(foreach=False),
    "foreach": dict(foreach=True),
    "fused": dict(fused=True),
}


def batch_for(n_total):
    return args.batch_small if n_total <= 1_000_000 else args.batch_large


def time_batches(fn, batch):
    for _ in range(args.warmup):
        fn()
    ms = []
    for _ in range(args.repeats):
        t0 = C.now()
        for _ in range(batch):
            fn()
        ms.append(1e3 * (C.now() - t0) / batch)
    return statistics.median(ms), min(ms), max(ms)


def bench_sgd(sizes, dtype, variant):
    n_total = sum(sizes)
    tag = f"torch nesterov n={n_total} tensors={len(sizes)} dtype={dtype} variant={variant}"
    g = torch.Generator().manual_seed(args.seed)
    params = []
    for s in sizes:
        q = torch.nn.Parameter(torch.randn(s, generator=g, dtype=DT[dtype]))
        q.grad = torch.randn(s, generator=g, dtype=DT[dtype])  # set once, kept fixed
        params.append(q)
    try:
        opt = torch.optim.SGD(params, lr=args.lr, momentum=args.momentum, nesterov=True,
                              dampening=0.0, **VARIANTS[variant])
        opt.step()  # the first step may be where a kernel is refused
    except (RuntimeError, ValueError, NotImplementedError, TypeError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"# note: {variant} refused for dtype={dtype} tensors={len(sizes)}: {reason}")
        print(f"{tag} skipped={type(e).__name__}")
        return
    batch = batch_for(n_total)
    med, lo, hi = time_batches(opt.step, batch)
    itemsize = torch.empty((), dtype=DT[dtype]).element_size()
    gbps = 5 * n_total * itemsize / (med * 1e-3) / 1e9
    print(f"{tag} batch={batch} median_ms={med:.4f} min_ms={lo:.4f} max_ms={hi:.4f} GBps_eff={gbps:.2f}")
    sys.stdout.flush()


def bench_knobs(sizes, dtype, foreach, groups=1):
    """Heavy ball with the knobs: SGD(weight_decay=1e-4, dampening=0.1) after
    clip_grad_norm_(params, 1.0); with groups > 1 the tensors split into that many
    param groups (10 tensors each), each with its own lr."""
    n_total = sum(sizes)
    variant = ("knobs_groups_" if groups > 1 else "knobs_") + ("foreach" if foreach else "foreach_false")
    tag = f"torch heavy_ball n={n_total} tensors={len(sizes)} dtype={dtype} variant={variant}"
    g = torch.Generator().manual_seed(args.seed)
    params = []
    for s in sizes:
        q = torch.nn.Parameter(torch.randn(s, generator=g, dtype=DT[dtype]))
        q.grad = torch.randn(s, generator=g, dtype=DT[dtype])
        params.append(q)
    if groups > 1:
        per = max(len(params) // groups, 1)
        param_groups = [{"params": params[k * per:(k + 1) * per], "lr": args.lr / max(k, 1)}
                        for k in range(groups) if params[k * per:(k + 1) * per]]
    else:
        param_groups = params
    opt = torch.optim.SGD(param_groups, lr=args.lr, momentum=args.momentum, dampening=0.1,
                          weight_decay=1e-4, foreach=foreach)

    def step():
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=foreach)
        opt.step()

    batch = batch_for(n_total)
    med, lo, hi = time_batches(step, batch)
    itemsize = torch.empty((), dtype=DT[dtype]).element_size()
    gbps = 5 * n_total * itemsize / (med * 1e-3) / 1e9
    print(f"{tag} batch={batch} median_ms={med:.4f} min_ms={lo:.4f} max_ms={hi:.4f} GBps_eff={gbps:.2f}")
    sys.stdout.flush()


def bench_copy(n):
    rng = np.random.default_rng(args.seed)
    src = rng.standard_normal(n)
    dst = np.empty_like(src)
    batch = batch_for(n)
    med, lo, hi = time_batches(lambda: np.copyto(dst, src), batch)
    assert np.array_equal(dst, src)
    nbytes = 2 * 8 * n
    print(f"copy n={n} dtype=f64 batch={batch} median_ms={med:.4f} min_ms={lo:.4f} max_ms={hi:.4f} "
          f"GBps={nbytes / (med * 1e-3) / 1e9:.2f} GBps_best={nbytes / (lo * 1e-3) / 1e9:.2f}")
    sys.stdout.flush()


print(f"# optimizer_step_torch: sizes={[int(s) for s in args.sizes]} dtypes={args.dtypes} "
      f"set={args.tensors}x{int(args.set_total) // max(args.tensors, 1)} copy_n={int(args.copy_n)} "
      f"warmup={args.warmup} repeats={args.repeats} batch={args.batch_small}/{args.batch_large} "
      f"threads={args.threads} seed={args.seed}")
print(f"# python {platform.python_version()} on {platform.machine()}, nproc={os.cpu_count()}, "
      f"affinity={len(os.sched_getaffinity(0))} cpus")
print(f"# torch {torch.__version__}, threads={torch.get_num_threads()}, "
      f"BLAS={'MKL' if torch.backends.mkl.is_available() else 'non-MKL'}, "
      f"mkldnn={torch.backends.mkldnn.is_available()}; numpy {np.__version__}")
print("# numpy BLAS: " + C.blas_info())
print("# " + C.openblas_env_note())
print(f"# optimizer: torch.optim.SGD(lr={args.lr}, momentum={args.momentum}, nesterov=True, dampening=0); "
      "grad set once (random), kept fixed; ms per step")
sys.stdout.flush()

if args.copy_n > 0:
    bench_copy(int(args.copy_n))
for dtype in args.dtypes:
    for n in args.sizes:
        for variant in ("foreach_false", "foreach", "fused"):
            bench_sgd([int(n)], dtype, variant)
        for foreach in (False, True):
            bench_knobs([int(n)], dtype, foreach)
    if args.tensors > 0:
        each = int(args.set_total) // args.tensors
        for variant in ("foreach", "fused"):
            bench_sgd([each] * args.tensors, dtype, variant)
        bench_knobs([each] * args.tensors, dtype, True)
        bench_knobs([each] * args.tensors, dtype, True, groups=10)
if args.copy_n > 0:
    bench_copy(int(args.copy_n))  # again at the end: drift of the machine during the run
