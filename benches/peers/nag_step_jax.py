#!/usr/bin/env python3
"""Time one full-batch NAG step of the two-layer ReLU model in JAX + optax (jit).

The whole step -- forward, loss, gradient (jax.value_and_grad by default, or
the explicit formula with --grad explicit), optax.sgd(lr, momentum,
nesterov=True) update -- is one jax.jit-compiled function with the parameters
and optimizer state donated. Every timed step ends with block_until_ready on
the new parameters and the loss. Last line: ms_per_step=<mean ms>.

Threads: XLA_FLAGS gets --xla_cpu_multi_thread_eigen=true
intra_op_parallelism_threads=T. XLA's CPU thread pool is sized from the
process's CPU affinity, so for T smaller than the number of usable CPUs the
process is also pinned to T CPUs (os.sched_setaffinity) before jax loads.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

p = C.nag_parser(__doc__.splitlines()[1])
p.add_argument("--grad", choices=("autograd", "explicit"), default="autograd",
               help="gradient by jax.value_and_grad (default) or by G = M^T X written out")
args = p.parse_args()
C.configure_threads(args.threads)
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           f" --xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={args.threads}").strip()
_cpus = sorted(os.sched_getaffinity(0))
pinned = ""
if args.threads < len(_cpus):
    os.sched_setaffinity(0, _cpus[: args.threads])
    pinned = f" (pinned to cpus {_cpus[: args.threads]})"

import numpy as np  # noqa: E402
import jax  # noqa: E402
import jaxlib  # noqa: E402

if args.dtype == "f64":
    jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

dt = jnp.float64 if args.dtype == "f64" else jnp.float32
X64, y64, W64, a64 = C.make_data(args)
n, d, m = args.n, args.d, args.m
X = jnp.asarray(X64, dtype=dt)
y = jnp.asarray(y64, dtype=dt)
a_s = jnp.asarray(a64 / np.sqrt(m), dtype=dt)  # a_r / sqrt(m)
W = jnp.asarray(W64, dtype=dt)

tx = optax.sgd(learning_rate=args.lr, momentum=args.momentum, nesterov=True)
opt_state = tx.init(W)


def loss_fn(W, X, y, a_s):
    u = jax.nn.relu(X @ W.T) @ a_s
    r = u - y
    return 0.5 * jnp.dot(r, r)


def explicit_value_and_grad(W, X, y, a_s):
    Z = X @ W.T
    r = jax.nn.relu(Z) @ a_s - y
    M = jnp.where(Z > 0, r[:, None] * a_s[None, :], jnp.zeros((), Z.dtype))
    return 0.5 * jnp.dot(r, r), M.T @ X


value_and_grad = jax.value_and_grad(loss_fn) if args.grad == "autograd" else explicit_value_and_grad


def step(W, opt_state, X, y, a_s):
    loss, g = value_and_grad(W, X, y, a_s)
    updates, opt_state = tx.update(g, opt_state, W)
    W = optax.apply_updates(W, updates)
    return W, opt_state, loss


step_jit = jax.jit(step, donate_argnums=(0, 1))

C.header("nag_step_jax", args, f"lr={args.lr} momentum={args.momentum} grad={args.grad}")
print(f"# jax {jax.__version__}, jaxlib {jaxlib.__version__}, "
      f"optax {optax.__version__}, devices {jax.devices()}{pinned}")
print(f"# XLA_FLAGS={os.environ['XLA_FLAGS']}")
print(f"# optimizer: optax.sgd(lr={args.lr}, momentum={args.momentum}, nesterov=True); whole step jax.jit, "
      f"gradient by {'jax.value_and_grad' if args.grad == 'autograd' else 'explicit G = M^T X'}")

t0 = C.now()
step_c = step_jit.lower(W, opt_state, X, y, a_s).compile()  # ahead-of-time: warm-up steps are pure runs
print(f"# compile: {1e3 * (C.now() - t0):.1f} ms")
losses = []
for t in range(args.warmup):
    W, opt_state, loss = step_c(W, opt_state, X, y, a_s)
    losses.append(loss)
jax.block_until_ready((W, opt_state))
times = []
for t in range(args.steps):
    t0 = C.now()
    W, opt_state, loss = step_c(W, opt_state, X, y, a_s)
    jax.block_until_ready((W, opt_state, loss))
    times.append(C.now() - t0)
    losses.append(loss)
losses = [float(l) for l in losses]

if args.print_losses:
    for t, l in enumerate(losses):
        print(f"loss {t} {l!r}")
print(f"# loss: first {losses[0]:.10g}, last {losses[-1]:.10g} after {len(losses)} steps")
C.report_times(times, args, flops=C.weight_space_flops(n, d, m))
