r"""The figures of D2L 7.8, saved as PNG without a display (matplotlib's Agg canvas, imported lazily).

* :func:`plot_loss` — loss against epochs of one or more :class:`adam_np.book.train.TrainResult` (the book's figure);
* :func:`plot_weights` — the weights :math:`(1-\beta_1)\beta_1^{t-i}` that :math:`v_t` puts on past gradients
  (summing to :math:`1-\beta_1^t`) and, after bias correction, on :math:`\hat v_t` (summing to 1);
* :func:`plot_trajectories` — 2-D paths of the chapter's optimizers on
  :math:`f(x) = 0.1 x_1^2 + 2 x_2^2` from :math:`(-5, -2)`.

matplotlib is the ``plot`` extra: importing this module does not need it, drawing does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.adam import AdamConfig, bias_corrections
from .chapter7 import SGD, AdaDelta, AdaGrad, AdamRule, Momentum, RMSProp

__all__ = [
    "TRAJECTORY_RULES",
    "f_2d",
    "grad_f_2d",
    "gradient_weights",
    "make_figures",
    "plot_loss",
    "plot_trajectories",
    "plot_weights",
    "trajectory",
]

#: The 2-D demo's rules: the book's step sizes for this function where it gives one (η = 0.4 for
#: gradient descent, AdaGrad and RMSProp, η = 0.6 with β = 0.5 for momentum); AdaDelta with ε = 0.1
#: and Adam with η = 0.5 so that their 20 steps are visible at this scale.
TRAJECTORY_RULES = {
    "sgd": SGD(lr=0.4),
    "momentum": Momentum(lr=0.6, momentum=0.5),
    "adagrad": AdaGrad(lr=0.4),
    "rmsprop": RMSProp(lr=0.4, gamma=0.9),
    "adadelta": AdaDelta(rho=0.9, eps=0.1),
    "adam": AdamRule(AdamConfig(lr=0.5, eps=1e-6)),
}


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure  # lazy; a bare Figure draws on the Agg canvas, no pyplot state

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(fig: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"path must end in .png, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def plot_loss(results: Any, path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Loss against epochs, one line per result (D2L's training figure).

    Parameters
    ----------
    results : TrainResult or sequence of TrainResult
    path : str or path-like
        The ``.png`` to write (parent folders are created).
    title : str, optional

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile, os
    >>> from adam_np.book.chapter7 import AdamRule
    >>> from adam_np.book.data import make_synthetic
    >>> from adam_np.book.train import train_ch7
    >>> X, y, _, _ = make_synthetic(n=100)
    >>> result = train_ch7(AdamRule(), X, y, seed=0)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     os.path.getsize(plot_loss(result, os.path.join(tmp, "loss.png"))) > 1000
    True
    """
    results = [results] if hasattr(results, "losses") else list(results)
    fig = _figure(5.0, 3.5)
    ax = fig.add_subplot()
    for r in results:
        ax.plot(r.epochs, r.losses, label=f"{r.optimizer} (final {r.final_loss:.4f})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_xlim(0, max(r.epochs[-1] for r in results))
    ax.grid(True, alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return _save(fig, path)


def gradient_weights(beta1: float, step: int, *, corrected: bool) -> np.ndarray:
    r"""Weights of the gradients :math:`g_1, \dots, g_t` in :math:`v_t` (or in :math:`\hat v_t`).

    .. math::

        v_t = \sum_{i=1}^t (1-\beta_1)\beta_1^{t-i} g_i, \qquad
        \hat v_t = v_t / (1-\beta_1^t)

    Parameters
    ----------
    beta1 : float
        In [0, 1).
    step : int
        :math:`t \ge 1`.
    corrected : bool
        Divide by the bias correction :math:`1-\beta_1^t` (weights then sum to 1).

    Returns
    -------
    numpy.ndarray
        Shape (t,), the weight of :math:`g_i` at index :math:`i-1`.

    Examples
    --------
    >>> gradient_weights(0.5, 2, corrected=False)
    array([0.25, 0.5 ])
    >>> gradient_weights(0.5, 2, corrected=True).sum()
    np.float64(1.0)
    """
    AdamConfig(beta1=beta1)  # validates beta1
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise ValueError(f"step must be an int >= 1, got {step!r}")
    i = np.arange(1, step + 1)
    w = (1.0 - beta1) * beta1 ** (step - i)
    if corrected:
        w = w / bias_corrections(beta1, 0.0, step)[0]
    return w


def plot_weights(path: str | os.PathLike, *, beta1: float = 0.9, step: int = 10) -> Path:
    r"""Bars of the weights on past gradients without and with bias correction.

    Parameters
    ----------
    path : str or path-like
        The ``.png`` to write.
    beta1 : float, default 0.9
    step : int, default 10
        :math:`t`; without correction the bars sum to :math:`1-\beta_1^t`, with it to 1.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     os.path.getsize(plot_weights(os.path.join(tmp, "w.png"))) > 1000
    True
    """
    fig = _figure(8.0, 3.2)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, corrected in zip(axes, (False, True)):
        w = gradient_weights(beta1, step, corrected=corrected)
        ax.bar(np.arange(1, step + 1), w, color="C1" if corrected else "C0")
        what = r"$\hat v_t$ (bias-corrected)" if corrected else r"$v_t$"
        ax.set_title(f"{what}: weights sum to {w.sum():.3f}")
        ax.set_xlabel(f"gradient $g_i$, i = 1..{step}")
    axes[0].set_ylabel(f"weight (β1 = {beta1}, t = {step})")
    return _save(fig, path)


def f_2d(x1: Any, x2: Any) -> Any:
    r"""The book's ill-conditioned quadratic :math:`f(x) = 0.1 x_1^2 + 2 x_2^2`.

    Parameters
    ----------
    x1, x2 : float or array

    Returns
    -------
    float or array

    Examples
    --------
    >>> f_2d(-5.0, -2.0)
    10.5
    """
    return 0.1 * x1 * x1 + 2.0 * x2 * x2


def grad_f_2d(x: Any) -> Any:
    r""":math:`\nabla f(x) = (0.2 x_1, 4 x_2)` for an array ``x`` of shape (2,).

    Parameters
    ----------
    x : array, shape (2,)

    Returns
    -------
    array, shape (2,)

    Examples
    --------
    >>> import numpy as np
    >>> grad_f_2d(np.array([-5.0, -2.0]))
    array([-1., -8.])
    """
    return x * np.asarray([0.2, 4.0], dtype=x.dtype)


def trajectory(rule: Any, start: Sequence[float] = (-5.0, -2.0), steps: int = 20) -> np.ndarray:
    """Points visited by ``rule`` minimizing :func:`f_2d` from ``start`` (float64).

    Parameters
    ----------
    rule : chapter-7 rule
    start : pair of float, default (-5, -2)
    steps : int, default 20

    Returns
    -------
    numpy.ndarray
        Shape (steps + 1, 2), the start first.

    Examples
    --------
    >>> trajectory(SGD(lr=0.4), steps=1)
    array([[-5. , -2. ],
           [-4.6,  1.2]])
    """
    x = [np.asarray(start, dtype=np.float64)]
    state = rule.init(x)
    points = [x[0]]
    for _ in range(steps):
        x, state = rule.update([grad_f_2d(x[0])], state, x)
        points.append(x[0])
    return np.stack(points)


def plot_trajectories(path: str | os.PathLike, *, rules: dict | None = None, steps: int = 20) -> Path:
    """2-D paths of the chapter's optimizers over the contours of :func:`f_2d`.

    Parameters
    ----------
    path : str or path-like
        The ``.png`` to write.
    rules : dict of str to rule, optional
        Default :data:`TRAJECTORY_RULES`.
    steps : int, default 20

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     os.path.getsize(plot_trajectories(os.path.join(tmp, "t.png"), steps=5)) > 1000
    True
    """
    rules = TRAJECTORY_RULES if rules is None else rules
    cols = 3
    rows = -(-len(rules) // cols)
    fig = _figure(4.0 * cols, 2.8 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    g1, g2 = np.meshgrid(np.linspace(-5.5, 2.0, 200), np.linspace(-3.0, 3.0, 200))
    for ax, (name, rule) in zip(axes, rules.items()):
        pts = trajectory(rule, steps=steps)
        ax.contour(g1, g2, f_2d(g1, g2), levels=12, colors="#1f77b4", linewidths=0.6)
        ax.plot(pts[:, 0], pts[:, 1], "-o", color="#ff7f0e", markersize=3)
        hyper = ", ".join(f"{k}={v:g}" for k, v in rule.hyperparams().items() if k in ("lr", "momentum", "gamma",
                                                                                      "rho", "eps"))
        ax.set_title(f"{name} ({hyper})", fontsize=9)
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
    for ax in axes[len(rules):]:
        ax.set_visible(False)
    return _save(fig, path)


def make_figures(outdir: str | os.PathLike, features: Any, labels: Any, *, seed: int = 0) -> list[Path]:
    """The three figures into ``outdir``: ``loss.png`` (all six rules, book defaults), ``weights.png``,
    ``trajectories.png``.

    Parameters
    ----------
    outdir : str or path-like
    features, labels : array
        Training data (e.g. from :func:`adam_np.book.data.get_data_ch7`).
    seed : int, default 0

    Returns
    -------
    list of pathlib.Path

    Examples
    --------
    >>> import tempfile
    >>> from adam_np.book.data import make_synthetic
    >>> X, y, _, _ = make_synthetic(n=100)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     [p.name for p in make_figures(tmp, X, y)]
    ['loss.png', 'weights.png', 'trajectories.png']
    """
    from .chapter7 import OPTIMIZERS, make_optimizer
    from .train import train_ch7

    outdir = Path(outdir)
    results = [train_ch7(make_optimizer(name), features, labels, seed=seed) for name in OPTIMIZERS]
    return [
        plot_loss(results, outdir / "loss.png", title="linear regression, batch 10, book defaults"),
        plot_weights(outdir / "weights.png"),
        plot_trajectories(outdir / "trajectories.png"),
    ]
