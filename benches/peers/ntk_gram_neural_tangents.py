#!/usr/bin/env python3
"""Time neural-tangents' empirical_ntk_fn on the two-layer ReLU model.

Run it with the second venv (/work/venv-nt: neural-tangents 0.6.5 needs an
older jax than the one in /work/venv-peers, see README.md).

Network (stax): Dense(m, W_std=s1, b_std=None, parameterization='ntk') -> Relu
-> Dense(1, W_std=1, b_std=None, parameterization='ntk'), with the kernels
set to W0^T and a from the shared numpy data, so that apply(params, X) equals
f(W; X) = (1/sqrt(m)) relu(X W^T) a exactly. In the 'ntk' parameterization a
Dense layer computes (W_std / sqrt(fan_in)) x . w, so the default
s1 = sqrt(d) makes the first layer exactly X W^T (with W_std = 1 it would be
X W^T / sqrt(d): same activation pattern S and same cost, H scaled by 1/d).

--params first (default): the NTK with respect to the first layer only (the
crate's trained parameters; the output layer a is closed over as a constant),
which is H = (X X^T) o (S S^T) / m of src/model.rs (TwoLayerReLU::ntk_gram) and is checked
against that formula. --params all: neural-tangents' default, the NTK with
respect to both layers (adds relu(Z) relu(Z)^T / m).

The kernel function is jax.jit-compiled (as neural-tangents recommends); the
first call (compile + run) is untimed. Out-of-memory errors are caught and
reported with ms_per_call=nan (exit status 3). Last line: ms_per_call=<mean ms>.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

p = C.base_parser(__doc__.splitlines()[1], steps_default=3, warmup_default=1, n=200, d=784, m=1024)
p.add_argument("--params", choices=("first", "all"), default="first",
               help="NTK w.r.t. the first layer only (= the crate's H) or w.r.t. both layers")
p.add_argument("--implementation", type=int, choices=(0, 1, 2, 3), default=1,
               help="nt.NtkImplementation: 0 AUTO (picks by FLOP estimate), 1 JACOBIAN_CONTRACTION "
                    "(library default), 2 NTK_VECTOR_PRODUCTS, 3 STRUCTURED_DERIVATIVES")
p.add_argument("--vmap-axes", type=int, default=None,
               help="empirical_ntk_fn's vmap_axes (library default: None)")
p.add_argument("--first-layer-w-std", type=float, default=None,
               help="W_std of the first Dense layer (default sqrt(d): exact match of the model)")
args = p.parse_args()
C.configure_threads(args.threads)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # neural_tangents imports TensorFlow (experimental)
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           f" --xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={args.threads}").strip()
_cpus = sorted(os.sched_getaffinity(0))
pinned = ""
if args.threads < len(_cpus):
    os.sched_setaffinity(0, _cpus[: args.threads])
    pinned = f" (pinned to cpus {_cpus[: args.threads]})"

import numpy as np  # noqa: E402

try:
    import jax
except ImportError as e:
    sys.exit(f"jax not importable ({e}); use the neural-tangents venv (README.md)")
if args.dtype == "f64":
    jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402

# Compatibility shim: neural-tangents 0.6.5's STRUCTURED_DERIVATIVES (and so AUTO)
# implementation reads jax.interpreters.ad.source_info_util and ad.config, which
# jax 0.4.30 no longer re-exports; put the two aliases back (no other change).
shimmed = []
try:
    from jax.interpreters import ad as _ad

    if not hasattr(_ad, "source_info_util"):
        from jax._src import source_info_util as _siu

        _ad.source_info_util = _siu
        shimmed.append("ad.source_info_util")
    if not hasattr(_ad, "config"):
        _ad.config = jax.config
        shimmed.append("ad.config")
except ImportError:
    pass

try:
    import neural_tangents as nt
    from neural_tangents import stax
except Exception as e:  # ImportError, or an API break against the installed jax
    print(f"# neural-tangents could not be imported: {type(e).__name__}: {e}")
    print("ms_per_call=nan")
    sys.exit(4)

dt = jnp.float64 if args.dtype == "f64" else jnp.float32
X64, y64, W64, a64 = C.make_data(args)
n, d, m = args.n, args.d, args.m
s1 = args.first_layer_w_std if args.first_layer_w_std is not None else float(np.sqrt(d))

init_fn, apply_fn, _ = stax.serial(
    stax.Dense(m, W_std=s1, b_std=None, parameterization="ntk"),
    stax.Relu(),
    stax.Dense(1, W_std=1.0, b_std=None, parameterization="ntk"),
)
_, params0 = init_fn(jax.random.PRNGKey(args.seed), (n, d))
# stax Dense params are (kernel (fan_in, fan_out), bias=None); replace by the shared data.
W1 = jnp.asarray(W64.T, dtype=dt)           # d x m
W2 = jnp.asarray(a64[:, None], dtype=dt)    # m x 1, entries +-1
X = jnp.asarray(X64, dtype=dt)
params = ((W1, params0[0][1]), params0[1], (W2, params0[2][1]))

if args.params == "first":
    def f(p1, x):
        return apply_fn(((p1, params[0][1]), params[1], params[2]), x)

    ntk_params = W1
else:
    f = apply_fn
    ntk_params = params

kw = dict(trace_axes=(-1,), implementation=args.implementation)
if args.vmap_axes is not None:
    kw["vmap_axes"] = args.vmap_axes
kernel_fn = jax.jit(nt.empirical_ntk_fn(f, **kw))

C.header("ntk_gram_neural_tangents", args,
         f"params={args.params} implementation={nt.NtkImplementation(args.implementation).name} "
         f"vmap_axes={args.vmap_axes} first_layer_W_std={s1:.6g}")
print(f"# neural-tangents {getattr(nt, '__version__', '?')}, jax {jax.__version__}, "
      f"devices {jax.devices()}{pinned}")
print(f"# XLA_FLAGS={os.environ['XLA_FLAGS']}")
if shimmed:
    print(f"# jax compatibility aliases added for neural-tangents: {', '.join(shimmed)}")
nbytes = 8 if args.dtype == "f64" else 4
print(f"# the first-layer Jacobian alone has n*m*d = {n * m * d:.3g} entries "
      f"= {n * m * d * nbytes / 2**30:.2f} GiB in {args.dtype}")

# Reference H by the formula of src/model.rs (numpy, float64).
S = (X64 @ W64.T > 0).astype(np.float64)
H_ref = (X64 @ X64.T) * (S @ S.T) / m
if args.params == "all":
    R = np.maximum(X64 @ W64.T, 0)
    H_ref = H_ref + R @ R.T / m


def is_oom(e):
    s = f"{type(e).__name__}: {e}"
    return isinstance(e, MemoryError) or any(
        k in s for k in ("RESOURCE_EXHAUSTED", "Out of memory", "out of memory", "bad_alloc",
                         "Failed to allocate", "Allocator"))


try:
    t0 = C.now()
    H = kernel_fn(X, None, ntk_params)
    jax.block_until_ready(H)
    print(f"# first call (compile + run): {1e3 * (C.now() - t0):.1f} ms")
    for _ in range(max(args.warmup - 1, 0)):
        jax.block_until_ready(kernel_fn(X, None, ntk_params))
    times = []
    for _ in range(args.steps):
        t0 = C.now()
        H = kernel_fn(X, None, ntk_params)
        jax.block_until_ready(H)
        times.append(C.now() - t0)
except Exception as e:  # noqa: BLE001
    if is_oom(e):
        msg = str(e).splitlines()[0][:500]
        print(f"# OUT OF MEMORY at n={n} d={d} m={m} {args.dtype}: {type(e).__name__}: {msg}")
        print("ms_per_call=nan")
        sys.exit(3)
    raise

H = np.asarray(H, dtype=np.float64)
err = np.abs(H - H_ref).max() / np.abs(H_ref).max()
print(f"# H: shape {H.shape}; max|H_nt - H_formula| / max|H_formula| = {err:.3g}")
C.report_times(times, args, label="ms_per_call")
