#!/usr/bin/env python3
"""Time one full-batch NAG step of the two-layer ReLU model in PyTorch (CPU).

Step = optimizer.zero_grad(), forward u = relu(X W^T) a / sqrt(m), loss
1/2 ||u - y||^2, backward, torch.optim.SGD(lr, momentum, nesterov=True,
dampening=0).step(). The gradient comes from autograd by default (what a
PyTorch user runs; X does not require grad, so the backward is one
(m x n)(n x d) GEMM plus the ReLU mask); --grad explicit writes G = M^T X
under torch.no_grad() into W.grad instead. Data come from numpy with the same
seed as the other peers. Threads: OMP/MKL env vars before import and
torch.set_num_threads(T). Last line: ms_per_step=<mean ms>.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

p = C.nag_parser(__doc__.splitlines()[1])
p.add_argument("--grad", choices=("autograd", "explicit"), default="autograd",
               help="gradient by loss.backward() (default) or by G = M^T X written out")
args = p.parse_args()
C.configure_threads(args.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(args.threads)

dt = torch.float64 if args.dtype == "f64" else torch.float32
X64, y64, W64, a64 = C.make_data(args)
n, d, m = args.n, args.d, args.m
X = torch.from_numpy(X64).to(dt).contiguous()
y = torch.from_numpy(y64).to(dt)
a_s = torch.from_numpy(a64 / np.sqrt(m)).to(dt)  # a_r / sqrt(m)
W = torch.nn.Parameter(torch.from_numpy(W64).to(dt).contiguous())
opt = torch.optim.SGD([W], lr=args.lr, momentum=args.momentum, nesterov=True, dampening=0.0)


def step_autograd():
    opt.zero_grad()
    u = torch.relu(X @ W.T) @ a_s
    r = u - y
    loss = 0.5 * torch.dot(r, r)
    loss.backward()
    opt.step()
    return loss.item()


def step_explicit():
    with torch.no_grad():
        Z = X @ W.T
        r = torch.relu(Z) @ a_s - y
        loss = 0.5 * torch.dot(r, r)
        M = (Z > 0).to(dt)
        M.mul_(r[:, None]).mul_(a_s[None, :])
        if W.grad is None:
            W.grad = M.T @ X
        else:
            torch.matmul(M.T, X, out=W.grad)
    opt.step()
    return loss.item()


step = step_autograd if args.grad == "autograd" else step_explicit

C.header("nag_step_torch", args, f"lr={args.lr} momentum={args.momentum} grad={args.grad}")
print(f"# torch {torch.__version__}, threads={torch.get_num_threads()}, "
      f"BLAS={'MKL' if torch.backends.mkl.is_available() else 'non-MKL'}, mkldnn={torch.backends.mkldnn.is_available()}")
print(f"# optimizer: torch.optim.SGD(lr={args.lr}, momentum={args.momentum}, nesterov=True, dampening=0); "
      f"gradient by {'autograd (loss.backward())' if args.grad == 'autograd' else 'explicit G = M^T X'}")

losses = []
for t in range(args.warmup):
    losses.append(step())
times = []
for t in range(args.steps):
    t0 = C.now()
    losses.append(step())  # .item() synchronises (CPU tensors are eager anyway)
    times.append(C.now() - t0)

if args.print_losses:
    for t, l in enumerate(losses):
        print(f"loss {t} {l!r}")
print(f"# loss: first {losses[0]:.10g}, last {losses[-1]:.10g} after {len(losses)} steps")
C.report_times(times, args, flops=C.weight_space_flops(n, d, m))
