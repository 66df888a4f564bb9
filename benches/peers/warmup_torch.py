#!/usr/bin/env python3
"""Write tests/golden/torch_warmup.json: real PyTorch warm-up schedules (f64).

LinearLR(start_factor, total_iters) alone, and SequentialLR(LinearLR, CosineAnnealingLR)
(a warm-up followed by a cosine decay, as Optax's warmup_cosine_decay_schedule), each over
a torch.optim.SGD(momentum=0.9) on f(x) = sum(a x^2)/2: the step size of every step and the
iterates, so tests/torch_knobs.rs can check Schedule::warmup_from against both.

    python benches/peers/warmup_torch.py   (venv with torch, benches/peers/requirements.txt)
"""
import json
import os

import torch

torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "golden", "torch_warmup.json")
A = [0.5, 1.0, 2.0, 3.0]
X0 = [1.0, -2.0, 0.5, 1.5]
BASE = 0.05


def run(make, steps, nesterov):
    x = torch.tensor(X0, dtype=torch.float64, requires_grad=True)
    a = torch.tensor(A, dtype=torch.float64)
    opt = torch.optim.SGD([x], lr=BASE, momentum=0.9, nesterov=nesterov)
    sched = make(opt)
    lrs, iterates = [], []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        x.grad = a * x.detach()
        opt.step()
        sched.step()
        iterates.append(x.detach().tolist())
    return lrs, iterates


cases = []
for nesterov in (False, True):
    lrs, its = run(lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=5), 12, nesterov)
    cases.append({"name": "linear_lr", "start_factor": 0.1, "warmup_steps": 5, "then": "constant",
                  "nesterov": nesterov, "lrs": lrs, "iterates": its})

    def seq(o):
        warm = torch.optim.lr_scheduler.LinearLR(o, start_factor=0.25, total_iters=4)
        cos = torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=20, eta_min=0.001)
        return torch.optim.lr_scheduler.SequentialLR(o, [warm, cos], milestones=[4])

    # 25 steps: CosineAnnealingLR climbs again after T_max (a period), Schedule::cosine holds its last value.
    lrs, its = run(seq, 25, nesterov)
    cases.append({"name": "linear_then_cosine", "start_factor": 0.25, "warmup_steps": 4,
                  "then": {"cosine": {"last": 0.001, "steps": 20}}, "nesterov": nesterov, "lrs": lrs,
                  "iterates": its})

with open(OUT, "w") as f:
    json.dump({"generator": "benches/peers/warmup_torch.py", "torch_version": torch.__version__,
               "base_lr": BASE, "momentum": 0.9, "a": A, "x0": X0, "cases": cases}, f)
print(f"wrote {OUT}: {len(cases)} cases")
