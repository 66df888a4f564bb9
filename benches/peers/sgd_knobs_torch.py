#!/usr/bin/env python3
"""Golden iterates of real torch.optim.SGD with every knob: weight decay, dampening, maximize, clipping, groups.

Writes ``tests/golden/torch_sgd_knobs.json`` (``--out``) with the iterates of
torch.optim.SGD(foreach=False) in float64, one thread, on a separable
quadratic with two parameter tensors, W of shape [3, 2] and b of shape [4]
(10 entries, W row-major first):

    theta0  W = [0.5, -1.0, 1.5, 0.25, -0.75, 2.0]   b = [1.0, -0.5, 0.3, -2.0]
    a       W = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]       b = [0.8, 1.2, 2.2, 0.6]
    c       W = [0.1, -0.2, 0.3, -0.4, 0.5, -0.6]    b = [0.05, -0.15, 0.25, -0.35]

No autograd: before every step each p.grad is set to a fresh tensor
``a * p + c`` (minimization) or ``-(a * p) + c`` (maximize=True: the gradient
of a concave objective, so ascent converges), computed in torch f64 as two
elementwise ops (product rounded, then the sum).

Step t = 0..99:
  1. p.grad = grad(p) for W and b;
  2. clipping over both tensors together: "norm":
     total = torch.nn.utils.clip_grad_norm_([W, b], max_norm=1.0), recorded
     (norm before clipping; torch scales by min(1, max_norm / (total + 1e-6)));
     "value": torch.nn.utils.clip_grad_value_([W, b], 0.5); "none": nothing.
     For "value" and "none" the recorded pre-clip norm is
     math.sqrt(s) with s the Python-float sum of g*g over W.grad (row-major)
     then b.grad, in that order (for "norm" it is torch's own total);
  3. every param group's 'lr', 'momentum', 'weight_decay' are set to the
     values of its piecewise-constant schedules at t (values[j], j = number
     of boundaries <= t);
  4. p_old = p.detach().clone() for every tensor;
  5. opt.step();
  6. decoupled weight decay lambda' (per group): with torch.no_grad(),
     p.add_(p_old, alpha=-(lr_t * wdd_t)) for each tensor of a group with
     lambda' != 0.
Recorded: the iterates after steps 1, 2, 10, 50, 100 (after the update of
t = 0, 1, 9, 49, 99) and the pre-clip norms at t = 0, 1, 9, 49, 99.

Cases (384): method gd (momentum 0) | hb (nesterov=False) | nag
(nesterov=True); weight decay none | coupled (weight_decay 0.01, torch's) |
decoupled (lambda' 0.02) | both; dampening 0.0 | 0.3 (hb only); maximize
False | True; clip none | norm | value; groups "one" ([W, b] in one group) |
"two" (group 0 = [W], group 1 = [b]); schedules "constant" | "piecewise".
Group 0: lr 0.05, momentum 0.9; group 1: lr 0.08, momentum 0.6, weight
decays doubled (0.02 coupled, 0.04 decoupled). Piecewise: group 0 lr
boundaries [40, 70] values [0.05, 0.025, 0.0125], momentum boundaries [50]
values [0.9, 0.8]; group 1 lr boundaries [25, 60] values [0.08, 0.08*0.3,
0.08*0.3*0.3], momentum constant 0.6; gd's momentum is [0.0]; weight decays
constant.

Checks (the script fails if one does not hold):
  * hand recursion: hb, one group, constant schedules, no clip / weight decay
    / dampening / maximize, equals buf = beta buf + g (buf_0 = g),
    p -= lr buf in Python floats to 1e-15;
  * an independent Python-float model of torch's semantics (see below)
    reproduces every case to 1e-13 (printed: the largest deviation and the
    number of cases it reproduces bit for bit). The model: maximize negates
    the gradient first, then coupled decay d = g + wd * p, then the buffer
    (first step: a copy of d, no dampening; later buf = beta * buf, then
    + (1 - dampening) * d), nesterov d = d + beta * buf else d = buf, then
    p = p - lr * d; every "x + alpha * y" is one torch add(alpha=) call,
    which on an AVX2/AVX512 CPU (torch.backends.cpu.get_cpu_capability())
    is a fused multiply-add -- the model uses an exact fma there and plain
    a*b+c under capability DEFAULT; the JSON records which.

Output: the JSON (layout in README "Scripts"; floats by repr, which
round-trips exactly) and a few summary lines. Usage, from the repository root:

    /work/venv-peers/bin/python benches/peers/sgd_knobs_torch.py [--out PATH]
"""
import argparse
import itertools
import json
import math
import os
import sys
from fractions import Fraction

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

C.configure_threads(1)

import torch  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHAPES = [[3, 2], [4]]
THETA0 = [[0.5, -1.0, 1.5, 0.25, -0.75, 2.0], [1.0, -0.5, 0.3, -2.0]]
A = [[0.5, 1.0, 1.5, 2.0, 2.5, 3.0], [0.8, 1.2, 2.2, 0.6]]
CC = [[0.1, -0.2, 0.3, -0.4, 0.5, -0.6], [0.05, -0.15, 0.25, -0.35]]
STEPS = 100
RECORD_AFTER = [1, 2, 10, 50, 100]
RECORD_T = [s - 1 for s in RECORD_AFTER]
CLIP_MAX_NORM = 1.0
CLIP_VALUE = 0.5
TOL_HAND = 1e-15
TOL_MODEL = 1e-13


def sched(boundaries, values):
    return {"boundaries": list(boundaries), "values": list(values)}


def sched_at(s, t):
    return s["values"][sum(1 for b in s["boundaries"] if b <= t)]


def make_groups(method, wd_kind, groups, schedules):
    gd = method == "gd"
    coupled = wd_kind in ("coupled", "both")
    decoupled = wd_kind in ("decoupled", "both")
    lr1 = 0.08
    spec = [  # (tensors, lr const, lr piecewise, mom const, mom piecewise, wd, wdd)
        dict(lr=(0.05, sched([40, 70], [0.05, 0.025, 0.0125])),
             mom=(0.0 if gd else 0.9, sched([], [0.0]) if gd else sched([50], [0.9, 0.8])),
             wd=0.01 if coupled else 0.0, wdd=0.02 if decoupled else 0.0),
        dict(lr=(lr1, sched([25, 60], [lr1, lr1 * 0.3, lr1 * 0.3 * 0.3])),
             mom=(0.0 if gd else 0.6, sched([], [0.0 if gd else 0.6])),
             wd=0.02 if coupled else 0.0, wdd=0.04 if decoupled else 0.0),
    ]
    tensor_sets = [[0, 1]] if groups == "one" else [[0], [1]]
    out = []
    for gi, tensors in enumerate(tensor_sets):
        s = spec[gi]
        pw = schedules == "piecewise"
        out.append({
            "tensors": tensors,
            "lr": s["lr"][1] if pw else sched([], [s["lr"][0]]),
            "momentum": s["mom"][1] if pw else sched([], [s["mom"][0]]),
            "weight_decay": sched([], [s["wd"]]),
            "decoupled_weight_decay": sched([], [s["wdd"]]),
        })
    return out


def seq_norm(grads):
    s = 0.0
    for g in grads:
        for x in g:
            s += x * x
    return math.sqrt(s)


def run_torch(case):
    ts = [torch.nn.Parameter(torch.tensor(THETA0[k], dtype=torch.float64).reshape(SHAPES[k]))
          for k in range(2)]
    av = [torch.tensor(A[k], dtype=torch.float64).reshape(SHAPES[k]) for k in range(2)]
    cv = [torch.tensor(CC[k], dtype=torch.float64).reshape(SHAPES[k]) for k in range(2)]
    groups = case["groups"]
    pgs = [{"params": [ts[k] for k in g["tensors"]],
            "lr": sched_at(g["lr"], 0), "momentum": sched_at(g["momentum"], 0),
            "weight_decay": sched_at(g["weight_decay"], 0)} for g in groups]
    opt = torch.optim.SGD(pgs, lr=pgs[0]["lr"], momentum=pgs[0]["momentum"],
                          dampening=case["dampening"], nesterov=case["method"] == "nag",
                          maximize=case["maximize"], foreach=False)
    iterates, norms = [], []
    for t in range(STEPS):
        with torch.no_grad():
            for k in range(2):
                p = ts[k].detach()
                ts[k].grad = (-(av[k] * p) + cv[k]) if case["maximize"] else (av[k] * p + cv[k])
        grads_flat = [ts[k].grad.reshape(-1).tolist() for k in range(2)]
        if case["clip"] == "norm":
            norm = float(torch.nn.utils.clip_grad_norm_(ts, max_norm=CLIP_MAX_NORM))
        else:
            norm = seq_norm(grads_flat)
            if case["clip"] == "value":
                torch.nn.utils.clip_grad_value_(ts, CLIP_VALUE)
        for g, pg in zip(groups, opt.param_groups):
            pg["lr"] = sched_at(g["lr"], t)
            pg["momentum"] = sched_at(g["momentum"], t)
            pg["weight_decay"] = sched_at(g["weight_decay"], t)
        p_old = [p.detach().clone() for p in ts]
        opt.step()
        with torch.no_grad():
            for g in groups:
                lr_t = sched_at(g["lr"], t)
                wdd_t = sched_at(g["decoupled_weight_decay"], t)
                if wdd_t != 0.0:
                    for k in g["tensors"]:
                        ts[k].add_(p_old[k], alpha=-(lr_t * wdd_t))
        if t in RECORD_T:
            iterates.append([ts[k].detach().reshape(-1).tolist() for k in range(2)])
            norms.append(norm)
    return iterates, norms


def fma_exact(x, y, z):
    """x * y + z with one rounding."""
    return float(Fraction(x) * Fraction(y) + Fraction(z))


def run_model(case, use_fma):
    """Python-float model of torch's single-tensor SGD + clipping + decoupled decay."""
    fma = fma_exact if use_fma else (lambda x, y, z: x * y + z)
    p = [list(v) for v in THETA0]
    buf = [None, None]
    iterates, norms = [], []
    for t in range(STEPS):
        if case["maximize"]:
            g = [[-(a * x) + c for a, x, c in zip(A[k], p[k], CC[k])] for k in range(2)]
        else:
            g = [[a * x + c for a, x, c in zip(A[k], p[k], CC[k])] for k in range(2)]
        norm = seq_norm(g)
        if case["clip"] == "norm":
            coef = min(CLIP_MAX_NORM / (norm + 1e-6), 1.0)
            g = [[x * coef for x in v] for v in g]
        elif case["clip"] == "value":
            g = [[min(max(x, -CLIP_VALUE), CLIP_VALUE) for x in v] for v in g]
        new_p = [None, None]
        for grp in case["groups"]:
            lr = sched_at(grp["lr"], t)
            mom = sched_at(grp["momentum"], t)
            wd = sched_at(grp["weight_decay"], t)
            wdd = sched_at(grp["decoupled_weight_decay"], t)
            for k in grp["tensors"]:
                d = [-x for x in g[k]] if case["maximize"] else list(g[k])
                if wd != 0.0:
                    d = [fma(wd, x, di) for x, di in zip(p[k], d)]
                if mom != 0.0:
                    if buf[k] is None:
                        buf[k] = list(d)
                    else:
                        alpha = 1 - case["dampening"]
                        buf[k] = [fma(alpha, di, mom * b) for b, di in zip(buf[k], d)]
                    if case["method"] == "nag":
                        d = [fma(mom, b, di) for b, di in zip(buf[k], d)]
                    else:
                        d = list(buf[k])
                q = [fma(-lr, di, x) for x, di in zip(p[k], d)]
                if wdd != 0.0:
                    q = [fma(-(lr * wdd), x, qi) for x, qi in zip(p[k], q)]
                new_p[k] = q
        p = new_p
        if t in RECORD_T:
            iterates.append([list(v) for v in p])
            norms.append(norm)
    return iterates, norms


def hand_hb(lr, beta):
    p = [list(v) for v in THETA0]
    b = None
    out = []
    for t in range(STEPS):
        g = [[a * x + c for a, x, c in zip(A[k], p[k], CC[k])] for k in range(2)]
        b = g if b is None else [[beta * bi + gi for bi, gi in zip(bb, gg)] for bb, gg in zip(b, g)]
        p = [[x - lr * bi for x, bi in zip(pp, bb)] for pp, bb in zip(p, b)]
        if t in RECORD_T:
            out.append([list(v) for v in p])
    return out


def max_dev(xs, ys):
    return max(abs(u - v) for X, Y in zip(xs, ys) for x, y in zip(X, Y) for u, v in zip(x, y))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "golden", "torch_sgd_knobs.json"))
    ap.add_argument("--no-model", action="store_true", help="skip the Python-float model check (slow part)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    capability = torch.backends.cpu.get_cpu_capability()
    use_fma = capability != "DEFAULT"

    cases = []
    variants = [("gd", 0.0), ("hb", 0.0), ("hb", 0.3), ("nag", 0.0)]
    for (method, damp), wd_kind, maximize, clip, groups, schedules in itertools.product(
            variants, ("none", "coupled", "decoupled", "both"), (False, True),
            ("none", "norm", "value"), ("one", "two"), ("constant", "piecewise")):
        name = (f"{method}-{wd_kind}-damp{damp}-{'max' if maximize else 'min'}-clip_{clip}"
                f"-{groups}-{schedules}")
        case = {"name": name, "method": method, "dampening": damp, "maximize": maximize,
                "clip": clip, "schedules": schedules,
                "groups": make_groups(method, wd_kind, groups, schedules)}
        case["iterates"], case["pre_clip_norms"] = run_torch(case)
        cases.append(case)
    assert len({c["name"] for c in cases}) == len(cases)
    for c in cases:
        for v in [x for it in c["iterates"] for vec in it for x in vec] + c["pre_clip_norms"]:
            assert math.isfinite(v), c["name"]

    # hand recursion check
    base = next(c for c in cases if c["name"] == "hb-none-damp0.0-min-clip_none-one-constant")
    hand = hand_hb(0.05, 0.9)
    dev = max_dev(base["iterates"], hand)
    print(f"hand heavy-ball recursion vs torch (hb, one group, constant): max|diff| = {dev:.3e} "
          f"(tolerance {TOL_HAND:g})")
    assert dev <= TOL_HAND, dev

    # torch's clip_grad_norm_ total vs the sequential sqrt(sum g^2)
    # (the model recomputes the latter; for clip "norm" cases the JSON holds torch's)
    if not args.no_model:
        worst, worst_name, exact, norm_rel = 0.0, None, 0, 0.0
        for c in cases:
            its, norms = run_model(c, use_fma)
            d = max_dev(c["iterates"], its)
            if d == 0.0 and norms == c["pre_clip_norms"]:
                exact += 1
            norm_rel = max(norm_rel, max(abs(u - v) / v for u, v in zip(c["pre_clip_norms"], norms)))
            if d > worst:
                worst, worst_name = d, c["name"]
        print(f"Python-float model (fma={use_fma}) vs torch: max|diff| = {worst:.3e} ({worst_name}), "
              f"bit-identical cases (iterates and norms) {exact}/{len(cases)}, "
              f"max rel diff of pre-clip norms {norm_rel:.3e} (tolerance {TOL_MODEL:g})")
        assert worst <= TOL_MODEL, (worst, worst_name)

    out = {
        "generator": "benches/peers/sgd_knobs_torch.py",
        "torch_version": torch.__version__,
        "dtype": "float64",
        "cpu_capability": capability,
        "add_alpha_is_fma": use_fma,
        "shapes": SHAPES, "theta0": THETA0, "a": A, "c": CC,
        "steps": STEPS, "recorded_after_steps": RECORD_AFTER,
        "clip_max_norm": CLIP_MAX_NORM, "clip_value": CLIP_VALUE,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        head = json.dumps(out, separators=(",", ":"))
        fh.write(head[:-1] + ',"cases":[\n')
        fh.write(",\n".join(json.dumps(c, separators=(",", ":"), allow_nan=False) for c in cases))
        fh.write("\n]}\n")
    with open(args.out) as fh:
        assert json.load(fh)["cases"] == cases
    print(f"wrote {args.out}: {len(cases)} cases, {os.path.getsize(args.out)} bytes, "
          f"torch {torch.__version__}, cpu capability {capability}")


if __name__ == "__main__":
    sys.exit(main())
