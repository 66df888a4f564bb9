#!/usr/bin/env python3
"""Golden iterate trajectories of torch.optim.SGD + torch.optim.lr_scheduler.LambdaLR.

Writes ``tests/golden/torch_sgd_schedules.json`` (relative to the repository)
with the iterates of the REAL PyTorch heavy-ball and Nesterov SGD, in float64,
driven by a LambdaLR learning-rate schedule, so the crate's schedule-aware
momentum optimizers can be checked against them.

Problem: f(x) = 0.5 * sum_i a_i x_i^2, dimension 5,
a = [0.3, 1.0, 2.5, 7.0, 15.0], x0 = [1.0, -2.0, 0.5, 3.0, -1.5]. The
gradient g = a * x is computed in torch and written into ``p.grad`` by hand
before every step (no autograd).

Optimizer: torch.optim.SGD([p], lr=0.05, momentum=0.9, dampening=0,
weight_decay=0, nesterov=False|True), default (on CPU: single-tensor) kernel.
PyTorch documents the recursion (dampening = 0, weight_decay = 0), with
mu = momentum and lr_t the learning rate of param_group 0 at step t:

    buf_0 = g_0                        (first step: the buffer is a copy of g)
    buf_t = mu * buf_{t-1} + g_t       (t >= 1)
    heavy ball (nesterov=False):  p_{t+1} = p_t - lr_t * buf_t
    Nesterov   (nesterov=True):   p_{t+1} = p_t - lr_t * (g_t + mu * buf_t)

Schedule: LambdaLR(opt, f) sets lr_t = base_lr * f(t), where t is the
scheduler epoch = number of optimizer steps taken so far; the loop is
``opt.step(); sched.step()``, so step t (0-based) uses base_lr * f(t).
Schedules f(t):

    constant    1
    step_decay  0.5 ** (t // 10)
    cosine      0.5 * (1 + cos(pi * min(t, 60) / 60)) * (1 - 0.01) + 0.01
                (cosine from 1 to 0.01 over 60 steps, then held)
    warmup_exp  (t + 1) / 5 for t < 5, else 0.97 ** (t - 5)

For each schedule and nesterov in (False, True), 80 steps are recorded:
``lrs`` = param_groups[0]['lr'] read just before each opt.step() (80 values)
and ``iterates`` = x_0 .. x_80 (81 lists of 5 floats). JSON layout:

    {"torch_version", "a", "x0", "base_lr", "momentum", "steps",
     "cases": [{"schedule", "nesterov", "lrs", "iterates"}]}

Floats are written by json.dumps (shortest repr, round-trips exactly).

Sanity check: the recursion above is re-implemented in plain Python floats
(with lr_t = base_lr * f(t)) and must match torch's iterates to 1e-13
(absolute, max over all cases, steps and coordinates); the max deviation is
printed. Usage (any venv with torch):

    python scripts/golden_torch_schedules.py [--out PATH]
"""
import argparse
import json
import math
import os
import sys

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import torch  # noqa: E402

A = [0.3, 1.0, 2.5, 7.0, 15.0]
X0 = [1.0, -2.0, 0.5, 3.0, -1.5]
BASE_LR = 0.05
MOMENTUM = 0.9
STEPS = 80
TOL = 1e-13


def f_constant(t):
    return 1.0


def f_step_decay(t):
    return 0.5 ** (t // 10)


def f_cosine(t):
    return 0.5 * (1.0 + math.cos(math.pi * min(t, 60) / 60)) * (1.0 - 0.01) + 0.01


def f_warmup_exp(t):
    return (t + 1) / 5 if t < 5 else 0.97 ** (t - 5)


SCHEDULES = [
    ("constant", f_constant),
    ("step_decay", f_step_decay),
    ("cosine", f_cosine),
    ("warmup_exp", f_warmup_exp),
]


def run_torch(fn, nesterov):
    a = torch.tensor(A, dtype=torch.float64)
    p = torch.nn.Parameter(torch.tensor(X0, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=BASE_LR, momentum=MOMENTUM, dampening=0.0,
                          weight_decay=0.0, nesterov=nesterov)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda=fn)
    iterates = [p.detach().tolist()]
    lrs = []
    for _ in range(STEPS):
        with torch.no_grad():
            p.grad = a * p.detach()
        lrs.append(float(opt.param_groups[0]["lr"]))
        opt.step()
        sched.step()
        iterates.append(p.detach().tolist())
    return lrs, iterates


def run_python(fn, nesterov):
    x = list(X0)
    buf = None
    iterates = [list(x)]
    lrs = []
    for t in range(STEPS):
        lr = BASE_LR * fn(t)
        lrs.append(lr)
        g = [ai * xi for ai, xi in zip(A, x)]
        buf = list(g) if buf is None else [MOMENTUM * b + gi for b, gi in zip(buf, g)]
        d = [gi + MOMENTUM * b for gi, b in zip(g, buf)] if nesterov else buf
        x = [xi - lr * di for xi, di in zip(x, d)]
        iterates.append(list(x))
    return lrs, iterates


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(repo, "tests", "golden", "torch_sgd_schedules.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)

    cases = []
    max_dev = 0.0
    max_lr_dev = 0.0
    for name, fn in SCHEDULES:
        for nesterov in (False, True):
            lrs, its = run_torch(fn, nesterov)
            plrs, pits = run_python(fn, nesterov)
            assert len(lrs) == STEPS and len(its) == STEPS + 1
            lr_dev = max(abs(u - v) for u, v in zip(lrs, plrs))
            dev = max(abs(u - v) for xs, ys in zip(its, pits) for u, v in zip(xs, ys))
            print(f"{name:10s} nesterov={str(nesterov):5s} max|x_torch - x_python|={dev:.3e} "
                  f"max|lr_torch - base_lr*f(t)|={lr_dev:.3e} x_80[0]={its[-1][0]!r}")
            max_dev = max(max_dev, dev)
            max_lr_dev = max(max_lr_dev, lr_dev)
            cases.append({"schedule": name, "nesterov": nesterov, "lrs": lrs, "iterates": its})

    print(f"max deviation (python recursion vs torch iterates): {max_dev:.3e} (tolerance {TOL:g})")
    print(f"max lr deviation (torch LambdaLR vs base_lr*f(t)): {max_lr_dev:.3e}")
    assert max_dev <= TOL, f"recursion differs from torch by {max_dev:.3e} > {TOL:g}"
    assert max_lr_dev <= 1e-15, f"LambdaLR lr differs from base_lr*f(t) by {max_lr_dev:.3e}"

    out = {
        "torch_version": torch.__version__,
        "a": A,
        "x0": X0,
        "base_lr": BASE_LR,
        "momentum": MOMENTUM,
        "steps": STEPS,
        "cases": cases,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(out, fh)
        fh.write("\n")
    print(f"wrote {args.out} ({len(cases)} cases, torch {torch.__version__})")


if __name__ == "__main__":
    sys.exit(main())
