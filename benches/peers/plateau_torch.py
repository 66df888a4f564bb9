#!/usr/bin/env python3
"""Golden learning rates of real torch.optim.lr_scheduler.ReduceLROnPlateau on a recorded loss sequence.

Writes ``tests/golden/torch_reduce_on_plateau.json`` (``--out``). The metric
is a fixed sequence of 80 losses (stored in the JSON too):

    losses[t] = 1.0 / (1 + t)                          t < 20
              = 0.05 + 0.001 * ((t * 7) % 5) / 5        20 <= t < 50  (plateau with wiggles)
              = 0.04 * 0.97 ** (t - 50)                 t >= 50

For each config, an SGD optimizer over two dummy f64 parameters in two
param groups (lr 0.1 and 0.2; torch refuses one tensor in two groups; no
optimizer step is taken) is wrapped in
ReduceLROnPlateau(opt, mode, factor, patience, threshold, threshold_mode,
cooldown, min_lr=[min_lr, 2 * min_lr], eps=eps); for each loss,
scheduler.step(metric) is called and both groups' lr read afterwards (80
pairs). mode "min" is fed the losses, mode "max" their negations (field
"fed": "loss" | "-loss"). Configs: mode {min, max} x threshold_mode
{rel, abs} x (factor, patience, threshold, cooldown, min_lr) in
{(0.5, 3, 1e-4, 0, 0.0), (0.1, 0, 0.01, 2, 1e-3), (0.3, 5, 0.1, 1, 0.005)},
eps 1e-8, plus (min, rel, 0.5, 2, 1e-4, 0, 0.04) with eps 0.05 (13 configs).

Check: a Python re-implementation of the scheduler (torch's rules: improvement
if a < best * (1 - threshold) [min, rel], a < best - threshold [min, abs],
a > best * (1 + threshold) [max, rel], a > best + threshold [max, abs], best
starting at +-inf; otherwise num_bad_epochs += 1; while in cooldown the
counter is decremented and num_bad_epochs reset to 0; when num_bad_epochs >
patience: every group's new lr = max(lr * factor, min_lr_i), applied only if
lr - new_lr > eps, then cooldown_counter = cooldown, num_bad_epochs = 0)
must give the same lrs bit for bit.

JSON: {"generator", "torch_version", "losses", "initial_lrs",
"configs": [{"mode", "threshold_mode", "factor", "patience", "threshold",
"cooldown", "min_lrs", "eps", "fed", "lrs"}]}. Usage, from the repository root:

    /work/venv-peers/bin/python benches/peers/plateau_torch.py [--out PATH]
"""
import argparse
import itertools
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

C.configure_threads(1)

import torch  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INITIAL_LRS = [0.1, 0.2]
N = 80


def loss_at(t):
    if t < 20:
        return 1.0 / (1 + t)
    if t < 50:
        return 0.05 + 0.001 * ((t * 7) % 5) / 5
    return 0.04 * 0.97 ** (t - 50)


def run_torch(cfg, losses):
    ps = [torch.nn.Parameter(torch.zeros(1, dtype=torch.float64)) for _ in INITIAL_LRS]
    opt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(ps, INITIAL_LRS)])
    sch = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode=cfg["mode"], factor=cfg["factor"], patience=cfg["patience"],
        threshold=cfg["threshold"], threshold_mode=cfg["threshold_mode"],
        cooldown=cfg["cooldown"], min_lr=list(cfg["min_lrs"]), eps=cfg["eps"])
    sign = -1.0 if cfg["fed"] == "-loss" else 1.0
    lrs = []
    for x in losses:
        sch.step(sign * x)
        lrs.append([float(g["lr"]) for g in opt.param_groups])
    return lrs


def run_model(cfg, losses):
    sign = -1.0 if cfg["fed"] == "-loss" else 1.0
    lr = list(INITIAL_LRS)
    best = math.inf if cfg["mode"] == "min" else -math.inf
    bad = cool = 0
    out = []
    for x in losses:
        a = sign * x
        th = cfg["threshold"]
        if cfg["mode"] == "min":
            better = a < (best * (1.0 - th) if cfg["threshold_mode"] == "rel" else best - th)
        else:
            better = a > (best * (th + 1.0) if cfg["threshold_mode"] == "rel" else best + th)
        if better:
            best, bad = a, 0
        else:
            bad += 1
        if cool > 0:
            cool -= 1
            bad = 0
        if bad > cfg["patience"]:
            for i in range(len(lr)):
                new = max(lr[i] * cfg["factor"], cfg["min_lrs"][i])
                if lr[i] - new > cfg["eps"]:
                    lr[i] = new
            cool, bad = cfg["cooldown"], 0
        out.append(list(lr))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "golden", "torch_reduce_on_plateau.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    losses = [loss_at(t) for t in range(N)]

    params = [(0.5, 3, 1e-4, 0, 0.0), (0.1, 0, 0.01, 2, 1e-3), (0.3, 5, 0.1, 1, 0.005)]
    specs = [(mode, tm, *pp, 1e-8) for mode, tm, pp in
             itertools.product(("min", "max"), ("rel", "abs"), params)]
    specs.append(("min", "rel", 0.5, 2, 1e-4, 0, 0.04, 0.05))
    configs = []
    for mode, tm, factor, patience, threshold, cooldown, min_lr, eps in specs:
        cfg = {"mode": mode, "threshold_mode": tm, "factor": factor, "patience": patience,
               "threshold": threshold, "cooldown": cooldown, "min_lrs": [min_lr, min_lr * 2],
               "eps": eps, "fed": "-loss" if mode == "max" else "loss"}
        cfg["lrs"] = run_torch(cfg, losses)
        assert cfg["lrs"] == run_model(cfg, losses), cfg
        configs.append(cfg)
        changes = [t for t in range(N) if cfg["lrs"][t] != (cfg["lrs"][t - 1] if t else INITIAL_LRS)]
        print(f"{mode} {tm} factor={factor} patience={patience} threshold={threshold} "
              f"cooldown={cooldown} min_lr={min_lr} eps={eps}: lr changes at t={changes}, "
              f"final {cfg['lrs'][-1]}")
    print(f"Python model reproduces all {len(configs)} configs bit for bit")

    out = {"generator": "benches/peers/plateau_torch.py", "torch_version": torch.__version__,
           "losses": losses, "initial_lrs": INITIAL_LRS}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        head = json.dumps(out, separators=(",", ":"), allow_nan=False)
        fh.write(head[:-1] + ',"configs":[\n')
        fh.write(",\n".join(json.dumps(c, separators=(",", ":"), allow_nan=False) for c in configs))
        fh.write("\n]}\n")
    with open(args.out) as fh:
        assert json.load(fh)["configs"] == configs
    print(f"wrote {args.out}: {len(configs)} configs, {os.path.getsize(args.out)} bytes, "
          f"torch {torch.__version__}")


if __name__ == "__main__":
    sys.exit(main())
