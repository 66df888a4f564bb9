"""Shared helpers for the Python peer benchmarks of ntk-momentum.

Import this module BEFORE numpy / jax / torch: `configure_threads` must set
the thread-count environment variables before any BLAS library is loaded.

The model (src/model.rs):

    X (n x d), unit-norm rows;  y in {+1,-1}^n;  W (m x d) ~ N(0, 1);
    a_r in {+1,-1} (fixed);  f(W; x) = (1/sqrt(m)) sum_r a_r relu(w_r . x)
    L(W) = 1/2 ||u - y||^2,  G = M^T X,  M_ir = r_i 1[w_r . x_i > 0] a_r / sqrt(m)

NAG (README, "Conventions") with the PyTorch / optax convention
(buf = beta buf + g; theta -= lr (g + beta buf)), identical to the
gradient-correction form theta_{t+1} = theta_t - lr g_t + beta (theta_t -
theta_{t-1}) - beta lr (g_t - g_{t-1}).
"""

import argparse
import os
import platform
import sys
import time

THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def base_parser(description, steps_default=10, warmup_default=2, n=1000, d=3072, m=4096):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--n", type=int, default=n, help="number of samples (rows of X)")
    p.add_argument("--d", type=int, default=d, help="input dimension")
    p.add_argument("--m", type=int, default=m, help="hidden width (rows of W)")
    p.add_argument("--dtype", choices=("f32", "f64"), default="f64")
    p.add_argument("--steps", type=int, default=steps_default, help="timed iterations K")
    p.add_argument("--warmup", type=int, default=warmup_default, help="untimed warm-up iterations W")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads T")
    p.add_argument("--seed", type=int, default=0, help="seed of the numpy data generator")
    p.add_argument(
        "--data",
        default=None,
        help="optional .npz with arrays X (n x d), y (n), W (m x d), a (m) to use instead "
        "of generating data (e.g. written by another implementation); overrides --n/--d/--m",
    )
    p.add_argument("--save-data", default=None, help="write the data used to this .npz")
    p.add_argument(
        "--idx-dir",
        default=None,
        help="read X and y from the training IDX files (raw or .gz) of MNIST or Fashion-MNIST in this directory, "
        "as examples/fashion_full.rs does: pixels / 255, mean image subtracted, rows scaled to unit norm, "
        "y = +1 for the labels in --positive and -1 otherwise; overrides --n and --d (W and a stay random)",
    )
    p.add_argument("--positive", default="0,2,3,4,6", help="labels of the class +1 with --idx-dir")
    return p


def read_idx(directory, kind):
    """The array of train-<kind> in `directory`: raw or gzip, official or dotted spelling."""
    import gzip

    import numpy as np

    stem = {"images": "train-images-idx3-ubyte", "labels": "train-labels-idx1-ubyte"}[kind]
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                raw = f.read()
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            dims = raw[3]
            shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
            return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)
    sys.exit(f"no {stem}[.gz] in {directory}")


def nag_parser(description, **kw):
    p = base_parser(description, **kw)
    p.add_argument("--lr", type=float, default=1e-3, help="step size eta")
    p.add_argument("--momentum", type=float, default=0.9, help="momentum beta")
    p.add_argument(
        "--print-losses",
        action="store_true",
        help="print every step's loss (warm-up and timed steps) as 'loss <t> <value>'",
    )
    return p


def configure_threads(threads):
    """Set thread-count env vars; call before importing numpy/jax/torch."""
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(threads)


def limit_numpy_threads(threads):
    """Limit numpy's BLAS pool to `threads` (threadpoolctl, when installed);
    the environment variables of configure_threads cover the rest."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:
        pass


def openblas_env_note():
    set_vars = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
    if set_vars:
        return (
            f"WARNING: {set_vars} is set; it can force a slower OpenBLAS kernel. For the "
            "benchmark command only: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python ..."
        )
    return "OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE: not set"


def make_data(args):
    """Generate (X, y, W0, a) in float64 with numpy from args.seed (or load args.data).

    Every peer uses this function, so the same seed gives the same data in
    numpy, JAX and PyTorch. Order of draws: X, y, W0, a.
    """
    import numpy as np

    if args.data:
        z = np.load(args.data)
        X, y, W, a = (np.asarray(z[k], dtype=np.float64) for k in ("X", "y", "W", "a"))
        args.n, args.d = X.shape
        args.m = W.shape[0]
        if y.shape != (args.n,) or W.shape != (args.m, args.d) or a.shape != (args.m,):
            sys.exit(f"inconsistent shapes in {args.data}: X{X.shape} y{y.shape} W{W.shape} a{a.shape}")
    elif getattr(args, "idx_dir", None):
        images = read_idx(args.idx_dir, "images")
        labels = read_idx(args.idx_dir, "labels")
        X = images.reshape(images.shape[0], -1).astype(np.float64) / 255.0
        X -= X.mean(axis=0)
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        positive = [int(c) for c in args.positive.split(",")]
        y = np.where(np.isin(labels, positive), 1.0, -1.0)
        args.n, args.d = X.shape
        rng = np.random.default_rng(args.seed)
        W = rng.standard_normal((args.m, args.d))
        a = rng.choice(np.array([-1.0, 1.0]), size=args.m)
    else:
        rng = np.random.default_rng(args.seed)
        X = rng.standard_normal((args.n, args.d))
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        y = rng.choice(np.array([-1.0, 1.0]), size=args.n)
        W = rng.standard_normal((args.m, args.d))
        a = rng.choice(np.array([-1.0, 1.0]), size=args.m)
    if args.save_data:
        np.savez(args.save_data, X=X, y=y, W=W, a=a)
    return X, y, W, a


def header(name, args, extra=""):
    print(f"# {name}: n={args.n} d={args.d} m={args.m} dtype={args.dtype} steps={args.steps} "
          f"warmup={args.warmup} threads={args.threads} seed={args.seed}"
          + (f" data={args.data}" if getattr(args, "data", None) else "")
          + (f" idx_dir={args.idx_dir} positive={args.positive}" if getattr(args, "idx_dir", None) else "")
          + (f" {extra}" if extra else ""))
    print(f"# python {platform.python_version()} on {platform.machine()}, nproc={os.cpu_count()}, "
          f"affinity={len(os.sched_getaffinity(0))} cpus")
    print("# " + openblas_env_note())


def blas_info():
    try:
        import threadpoolctl

        out = []
        for i in threadpoolctl.threadpool_info():
            out.append(f"{i.get('internal_api')} {i.get('version')} arch={i.get('architecture')} "
                       f"threads={i.get('num_threads')} ({os.path.basename(i.get('filepath', ''))})")
        return "; ".join(out) if out else "none detected"
    except ImportError:
        return "threadpoolctl not installed"


def weight_space_flops(n, d, m):
    """Flops of one weight-space step: X W^T and M^T X, 2 n m d each."""
    return 4.0 * n * m * d


def report_times(times_s, args, label="ms_per_step", flops=None):
    """Print diagnostics, then the required last line '<label>=<mean ms>'."""
    import statistics

    ms = [1e3 * t for t in times_s]
    mean = sum(ms) / len(ms)
    print(f"# timed {len(ms)} iterations: mean {mean:.3f} ms, median {statistics.median(ms):.3f} ms, "
          f"min {min(ms):.3f} ms, max {max(ms):.3f} ms")
    if flops:
        print(f"# effective rate (at the mean): {flops / (mean * 1e-3) / 1e9:.1f} GFLOP/s "
              f"for {flops / 1e9:.3f} GFLOP per iteration")
    sys.stdout.flush()
    print(f"{label}={mean:.4f}")


now = time.perf_counter
