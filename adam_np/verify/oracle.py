r"""An mpmath oracle of Algorithm 1: one Adam step in 50 significant digits.

Every input (arrays, hyper-parameters) is taken at its exact binary value, so the oracle
answers "what should one step give for these very numbers" up to :math:`10^{-50}`; a float
implementation is judged by its distance to it in units in the last place (:func:`ulp_errors`).
mpmath is an optional dependency (``pip install mpmath``, in the ``test`` extra).

.. math::

    g &\leftarrow -g \text{ (maximize)},\quad g \leftarrow g + \lambda x \text{ (L2)},\quad
        x \leftarrow (1-\eta\lambda)x \text{ (decoupled)} \\
    v_t &= \beta_1 v_{t-1} + (1 - \beta_1) g_t, \qquad s_t = \beta_2 s_{t-1} + (1 - \beta_2) g_t^2 \\
    \Delta x &= \eta\,\hat v_t/(\sqrt{\hat s_t} + \epsilon) \text{ (outside)},\quad
        \eta\,\hat v_t/\sqrt{\hat s_t + \epsilon} \text{ (root)},\quad
        \frac{\eta\sqrt{1-\beta_2^t}}{1-\beta_1^t}\,v_t/(\sqrt{s_t} + \hat\epsilon) \text{ (hat)}

Examples
--------
>>> import numpy as np
>>> from adam_np import AdamConfig
>>> out = adam_step_mp(np.array([1.0]), np.array([0.5]), np.zeros(1), np.zeros(1), 1, AdamConfig(lr=0.1))
>>> float(out.x[0]), float(out.scale_x[0])
(0.900000002, 1.0)
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ..core.adam import AdamConfig, _check_step, bias_corrections

__all__ = ["DIGITS", "OracleStep", "adam_step_mp", "ulp_errors"]

DIGITS = 50
"""Significant decimal digits of the oracle's arithmetic."""


class OracleStep(NamedTuple):
    """One exact step: new values and the scales their errors are measured at (lists of ``mpf``).

    Attributes
    ----------
    x, v, s : list of mpmath.mpf
        :math:`x_t, v_t, s_t`.
    dx : list of mpmath.mpf
        :math:`\\Delta x` (so that :math:`x_t = x_{t-1}' - \\Delta x`, :math:`x'` after decoupled decay).
    scale_x : list of mpmath.mpf
        :math:`\\max(|x_{t-1}|, |\\Delta x|_{abs})`: the magnitude of the operands of :math:`x - \\Delta x`,
        with :math:`|\\Delta x|_{abs}` the step computed from :math:`\\beta_1|v_{t-1}| + (1-\\beta_1)|g|` —
        the size :math:`\\Delta x` has before :math:`v_t`'s own cancellation.
    scale_v : list of mpmath.mpf
        :math:`\\max(\\beta_1|v_{t-1}|, (1-\\beta_1)|g|)`, the operands of :math:`v_t`'s sum.
    scale_s : list of mpmath.mpf
        :math:`s_t` (a sum of non-negative terms: no cancellation).
    """

    x: list
    v: list
    s: list
    dx: list
    scale_x: list
    scale_v: list
    scale_s: list


def _mp():
    try:
        import mpmath
    except ImportError as exc:  # pragma: no cover - mpmath is in the test extra
        raise ImportError("adam_np.verify.oracle needs mpmath: pip install mpmath") from exc
    return mpmath


def adam_step_mp(x: Any, g: Any, v: Any, s: Any, step: int, config: AdamConfig, *, digits: int = DIGITS,
                 coefficients: str = "exact") -> OracleStep:
    """One step of Algorithm 1 (plain Adam, any ``eps_mode``) in ``digits``-digit arithmetic: the multi-precision
    (``_mp``) twin of the float :func:`adam_np.core.adam.adam_step`, used to judge it.

    Parameters
    ----------
    x, g, v, s : array_like
        Parameters :math:`x_{t-1}`, gradient :math:`g_t`, moments :math:`v_{t-1}, s_{t-1}` (NumPy arrays or
        anything ``np.asarray`` takes; float32 values are taken exactly too).
    step : int
        The step :math:`t \\ge 1` being taken.
    config : AdamConfig
        A plain-Adam config (:attr:`AdamConfig.is_plain_adam`, or decoupled weight decay); hyper-parameters are
        taken at their exact double value, a schedule ``lr`` is evaluated at ``step``.
    digits : int, default 50
    coefficients : {"exact", "float64"}, default "exact"
        ``"exact"``: :math:`1-\beta^t` and :math:`\alpha_t` in ``digits`` digits (Algorithm 1 itself).
        ``"float64"``: the per-step Python-float coefficients exactly as adam_np computes them
        (:func:`adam_np.bias_corrections`, ``eps_hat``'s :math:`\alpha_t`), so that only the array
        arithmetic is judged. They differ most where :math:`1-\beta_2^t` cancels (small t, β2 near 1:
        at t = 2, β2 = 0.999 the float64 :math:`1-\beta_2^2` carries a relative error of ~1e-14).

    Returns
    -------
    OracleStep

    Raises
    ------
    TypeError
        If ``step`` is not an int (bool and float are rejected).
    ValueError
        For a variant the oracle does not model, or ``step < 1``.
    """
    if config.variant is not None or config.eps_root:
        raise ValueError("the oracle models plain Adam (variant='adam', eps_root=0), got "
                         f"variant={config.variant_name!r} and eps_root={config.eps_root!r}")
    step = _check_step(step, "step")
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step!r}")
    if coefficients not in ("exact", "float64"):
        raise ValueError(f"coefficients must be 'exact' or 'float64', got {coefficients!r}")
    mp = _mp()
    ctx = mp.mp.clone()
    ctx.dps = digits
    f = ctx.mpf
    b1, b2, eps, lam = f(config.beta1), f(config.beta2), f(config.eps), f(config.weight_decay)
    lr_float = config.lr_at(int(step))
    lr = f(lr_float)
    if coefficients == "exact":
        bc1, bc2 = 1 - b1 ** int(step), 1 - b2 ** int(step)
        alpha = lr * ctx.sqrt(bc2) / bc1
    else:
        bc1_float, bc2_float = bias_corrections(config.beta1, config.beta2, int(step))
        bc1, bc2 = f(bc1_float), f(bc2_float)
        alpha = f(lr_float * math.sqrt(bc2_float) / bc1_float)
    out: dict[str, list] = {k: [] for k in OracleStep._fields}
    arrays = [np.asarray(a, dtype=np.float64).ravel() for a in (x, g, v, s)]  # float32 -> float64 is exact
    for xi, gi, vi, si in zip(*arrays):
        xi, gi, vi, si = f(float(xi)), f(float(gi)), f(float(vi)), f(float(si))
        if config.maximize:
            gi = -gi
        if lam:
            if config.weight_decay_mode == "l2":
                gi = gi + lam * xi
            else:  # decoupled: (1 - lr*lam) x before the step; decoupled_add is the same in exact arithmetic
                xi = (1 - lr * lam) * xi
        vn = b1 * vi + (1 - b1) * gi
        sn = b2 * si + (1 - b2) * gi * gi
        v_abs = b1 * abs(vi) + (1 - b1) * abs(gi)
        if config.eps_mode == "hat":
            den = ctx.sqrt(sn) + eps
            dx, dx_abs = alpha * vn / den, alpha * v_abs / den
        else:
            s_hat = sn / bc2
            den = ctx.sqrt(s_hat + eps) if config.eps_mode == "root" else ctx.sqrt(s_hat) + eps
            dx, dx_abs = lr * (vn / bc1) / den, lr * (v_abs / bc1) / den
        for key, value in (("x", xi - dx), ("v", vn), ("s", sn), ("dx", dx), ("scale_x", max(abs(xi), dx_abs)),
                           ("scale_v", v_abs), ("scale_s", sn)):
            out[key].append(value)
    return OracleStep(**out)


def ulp_errors(computed: Any, exact: list, scale: list, dtype: Any = None) -> np.ndarray:
    """``|computed - exact|`` in units in the last place of ``dtype`` at the magnitude ``scale``.

    Parameters
    ----------
    computed : array_like
        The float results.
    exact : list of mpmath.mpf
        The oracle's values.
    scale : list of mpmath.mpf
        Magnitudes at which one ulp is taken (``OracleStep.scale_*``); ulp(0) is the smallest subnormal.
    dtype : numpy dtype, optional
        Defaults to ``computed``'s dtype.

    Returns
    -------
    ndarray of float64

    Raises
    ------
    ValueError
        If ``computed`` (flattened), ``exact`` and ``scale`` differ in length.

    Examples
    --------
    >>> import mpmath
    >>> ulp_errors(np.array([1.0]), [mpmath.mpf(1) + mpmath.mpf(2) ** -52], [mpmath.mpf(1)])
    array([1.])
    """
    computed = np.asarray(computed)
    dtype = np.dtype(dtype or computed.dtype)
    flat = computed.ravel()
    if not len(flat) == len(exact) == len(scale):
        raise ValueError(f"computed, exact and scale must have the same length, got {len(flat)}, {len(exact)} "
                         f"and {len(scale)}")
    errors = np.empty(flat.shape, dtype=np.float64)
    for i, (c, e, m) in enumerate(zip(flat, exact, scale)):
        ulp = np.spacing(dtype.type(abs(float(m))))  # float(m) may round up a binade: at most 2x coarser
        errors[i] = float(abs(float(c) - e)) / float(ulp)
    return errors
