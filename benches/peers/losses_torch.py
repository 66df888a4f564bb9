#!/usr/bin/env python3
"""Print the NAG loss trajectory of the two-layer ReLU model, PyTorch reference.

torch.optim.SGD(lr, momentum, nesterov=True, dampening=0), full batch,
gradient by autograd, data from numpy with the shared generator (_common.py;
or --data FILE.npz). Output, one line per step t = 0..K-1, the loss at W_t
(before step t's update):

    # losses_torch n=.. d=.. m=.. dtype=.. seed=.. lr=.. momentum=.. steps=..
    <t> <loss, 17 significant digits>

--compare-numpy also runs the hand-written numpy step (explicit gradient) on
the same data and prints the largest relative difference of the two
trajectories as the last line: max_rel_diff=<x>.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

p = C.base_parser(__doc__.splitlines()[1], steps_default=20, warmup_default=0, n=100, d=64, m=128)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--momentum", type=float, default=0.9)
p.add_argument("--optimizer", choices=("nag", "hb", "gd"), default="nag",
               help="nag: nesterov=True; hb: heavy ball (nesterov=False); gd: momentum 0")
p.add_argument("--compare-numpy", action="store_true")
p.set_defaults(threads=1)
args = p.parse_args()
C.configure_threads(args.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(args.threads)
X64, y64, W64, a64 = C.make_data(args)
n, d, m, K = args.n, args.d, args.m, args.steps
beta = 0.0 if args.optimizer == "gd" else args.momentum
nesterov = args.optimizer == "nag"

tdt = torch.float64 if args.dtype == "f64" else torch.float32
X = torch.from_numpy(X64).to(tdt)
y = torch.from_numpy(y64).to(tdt)
a_s = torch.from_numpy(a64 / np.sqrt(m)).to(tdt)
W = torch.nn.Parameter(torch.from_numpy(W64).to(tdt).clone())
opt = torch.optim.SGD([W], lr=args.lr, momentum=beta, nesterov=nesterov, dampening=0.0)
torch_losses = []
for t in range(K):
    opt.zero_grad()
    r = torch.relu(X @ W.T) @ a_s - y
    loss = 0.5 * torch.dot(r, r)
    loss.backward()
    opt.step()
    torch_losses.append(loss.item())

print(f"# losses_torch n={n} d={d} m={m} dtype={args.dtype} seed={args.seed} lr={args.lr} "
      f"momentum={beta} optimizer={args.optimizer} steps={K} torch={torch.__version__}")
for t, l in enumerate(torch_losses):
    print(f"{t} {l:.17g}")

if args.compare_numpy:
    ndt = np.float64 if args.dtype == "f64" else np.float32
    Xn, yn, Wn = X64.astype(ndt), y64.astype(ndt), W64.astype(ndt).copy()
    an = (a64 / np.sqrt(m)).astype(ndt)
    buf = np.zeros_like(Wn)
    np_losses = []
    for t in range(K):
        Z = Xn @ Wn.T
        r = np.maximum(Z, 0) @ an - yn
        np_losses.append(0.5 * float(r @ r))
        G = ((Z > 0) * r[:, None] * an[None, :]).T @ Xn
        buf = beta * buf + G
        Wn -= args.lr * (G + beta * buf) if nesterov else args.lr * buf
    rel = max(abs(a - b) / abs(b) for a, b in zip(torch_losses, np_losses))
    print(f"# numpy (explicit gradient) last loss {np_losses[-1]:.17g}")
    print(f"max_rel_diff={rel:.3e}")
