"""Time D2L 7.8's Adam run (airfoil, batch 10, 2 epochs, lr 0.01, eps 1e-6) for adam_np and the book's torch code.

The torch side is the book's scratch code re-implemented here: ``get_data_ch11`` (float32, standardized),
``load_array`` (``DataLoader`` with shuffling), ``adam`` (in-place moment updates under ``no_grad``) and
``train_ch11`` (``l.mean().backward()``, loss over the whole data iterator every 100 examples with the
timer stopped). Both report the book's "sec per epoch" (update time only, evaluation excluded); the table also
shows the wall time of the whole run. Repeats are interleaved (adam_np, torch, adam_np, ...) and medians
reported, so machine load hits both alike.

Usage: python benchmarks/d2l_train.py [--repeats 7] [--data PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils import data as tud

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adam_np.book.chapter7 import AdamRule
from adam_np.book.data import get_data_ch7, load_airfoil
from adam_np.book.train import train_ch7


def torch_scratch(features: torch.Tensor, labels: torch.Tensor, seed: int) -> tuple[float, float]:
    """The book's ``train_ch11(adam, init_adam_states(5), {'lr': 0.01, 't': 1}, data_iter, 5)``."""
    torch.manual_seed(seed)
    data_iter = tud.DataLoader(tud.TensorDataset(features, labels), 10, shuffle=True)
    w = torch.normal(mean=0.0, std=0.01, size=(5, 1), requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    states = ((torch.zeros((5, 1)), torch.zeros((5, 1))), (torch.zeros(1), torch.zeros(1)))
    hyperparams = {"lr": 0.01, "t": 1}

    def net(X):
        return torch.matmul(X, w) + b

    def loss(y_hat, y):
        return (y_hat - y.reshape(y_hat.shape)) ** 2 / 2

    def adam(params, states, hyperparams):
        beta1, beta2, eps = 0.9, 0.999, 1e-6
        for p, (v, s) in zip(params, states):
            with torch.no_grad():
                v[:] = beta1 * v + (1 - beta1) * p.grad
                s[:] = beta2 * s + (1 - beta2) * torch.square(p.grad)
                v_bias_corr = v / (1 - beta1 ** hyperparams["t"])
                s_bias_corr = s / (1 - beta2 ** hyperparams["t"])
                p[:] -= hyperparams["lr"] * v_bias_corr / (torch.sqrt(s_bias_corr) + eps)
            p.grad.data.zero_()
        hyperparams["t"] += 1

    def evaluate_loss():
        total, count = 0.0, 0
        with torch.no_grad():
            for X, y in data_iter:
                ls = loss(net(X), y)
                total, count = total + float(ls.sum()), count + ls.numel()
        return total / count

    n, timer, last = 0, 0.0, None
    start = time.perf_counter()
    for _ in range(2):
        for X, y in data_iter:
            ls = loss(net(X), y).mean()
            ls.backward()
            adam([w, b], states, hyperparams)
            n += X.shape[0]
            if n % 100 == 0:
                timer += time.perf_counter() - start
                last = evaluate_loss()
                start = time.perf_counter()
    return last, timer / 2


class _Timed:
    """Wraps a rule and adds up the time spent in its ``update`` (the optimizer's share of a step)."""

    def __init__(self, rule) -> None:
        self.rule, self.name, self.seconds = rule, rule.name, 0.0

    def init(self, params):
        return self.rule.init(params)

    def update(self, grads, state, params):
        t0 = time.perf_counter()
        out = self.rule.update(grads, state, params)
        self.seconds += time.perf_counter() - t0
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--data", default=None, help="airfoil file (default: the copy shipped with adam_np)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    X, y = get_data_ch7(args.data)
    raw = load_airfoil(args.data).astype(np.float32)  # the book: genfromtxt(dtype=float32), numpy mean/std
    raw = torch.from_numpy((raw - raw.mean(axis=0)) / raw.std(axis=0))
    tX, ty = raw[:1500, :-1], raw[:1500, -1]

    ours = {"adam_np": AdamRule(), "adam_np in-place": AdamRule(in_place=True)}
    rows = {**{k: ([], [], []) for k in ours}, "torch scratch (book)": ([], [], [])}
    for rep in range(args.repeats + 1):  # the first round warms up and is dropped
        for key, rule in ours.items():
            t0 = time.perf_counter()
            r = train_ch7(rule, X, y, batch_size=10, num_epochs=2, seed=rep)
            wall = time.perf_counter() - t0
            if rep:
                rows[key][0].append(r.sec_per_epoch)
                rows[key][1].append(wall)
                rows[key][2].append(r.final_loss)
        t0 = time.perf_counter()
        final, per_epoch = torch_scratch(tX, ty, seed=rep)
        wall = time.perf_counter() - t0
        if rep:
            rows["torch scratch (book)"][0].append(per_epoch)
            rows["torch scratch (book)"][1].append(wall)
            rows["torch scratch (book)"][2].append(final)

    med = {k: (statistics.median(a), statistics.median(b), statistics.mean(c)) for k, (a, b, c) in rows.items()}
    print(f"D2L 7.8 Adam on airfoil, batch 10, 2 epochs; medians of {args.repeats} interleaved repeats "
          f"(torch {torch.__version__}, 1 thread; numpy {np.__version__})")
    print(f"{'implementation':<22} {'sec/epoch (book)':>17} {'wall s/run':>11} {'mean final loss':>16}")
    for k, (per_epoch, wall, loss) in med.items():
        print(f"{k:<22} {per_epoch:>17.6f} {wall:>11.4f} {loss:>16.6f}")
    timed = _Timed(AdamRule())
    r = train_ch7(timed, X, y, seed=0)
    print(f"adam_np: adam_np.update takes {timed.seconds / 2 / r.sec_per_epoch:.0%} of the update time "
          f"({timed.seconds / 300 * 1e6:.1f} us per call, {r.sec_per_epoch / 150 * 1e6:.1f} us per step in all)")
    t = med["torch scratch (book)"]
    for key in ours:
        a = med[key]
        print(f"speed-up of {key} over torch scratch: {t[0] / a[0]:.1f}x per epoch (book timer), "
              f"{t[1] / a[1]:.1f}x wall time of the whole run")


if __name__ == "__main__":
    main()
