r"""The linear model of D2L 7.8 with its squared loss and hand-written gradients, on any ``xp``.

For features :math:`X \in \mathbb R^{m\times d}`, weights :math:`w \in \mathbb R^{d\times 1}`, bias
:math:`b \in \mathbb R^{1}` and labels :math:`y \in \mathbb R^{m}`:

.. math::

    \hat y = X w + b, \qquad
    L(w, b) = \frac1m \sum_{i=1}^m \tfrac12 (\hat y_i - y_i)^2, \\
    r = \hat y - y, \qquad
    \frac{\partial L}{\partial w} = \frac1m X^\top r, \qquad
    \frac{\partial L}{\partial b} = \frac1m \sum_i r_i .

The loss is the mean over the batch, as D2L's ``train_ch7`` takes ``l.mean()`` before ``backward()``.
"""

from __future__ import annotations

import math
from typing import Any

from ..core._xp import array_namespace

__all__ = ["grad_squared_loss", "linreg", "squared_loss"]


def _check(X: Any, w: Any, b: Any, y: Any = None) -> None:
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (examples, features), got shape {tuple(X.shape)}")
    if tuple(w.shape) != (X.shape[1], 1):
        raise ValueError(f"w must have shape ({X.shape[1]}, 1) for X of shape {tuple(X.shape)}, got {tuple(w.shape)}")
    if tuple(b.shape) != (1,):
        raise ValueError(f"b must have shape (1,), got {tuple(b.shape)}")
    if y is not None and tuple(y.shape) != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},) for X of shape {tuple(X.shape)}, got {tuple(y.shape)}")


def linreg(X: Any, w: Any, b: Any) -> Any:
    r"""The linear model :math:`\hat y = Xw + b`, shape (m, 1) as in the book.

    Parameters
    ----------
    X : array, shape (m, d)
    w : array, shape (d, 1)
    b : array, shape (1,)

    Returns
    -------
    array, shape (m, 1)

    Examples
    --------
    >>> import numpy as np
    >>> linreg(np.array([[1.0, 2.0]]), np.array([[3.0], [4.0]]), np.array([0.5]))
    array([[11.5]])
    """
    xp = array_namespace(X, w, b, name="X, w, b")
    _check(X, w, b)
    return _linreg(X, w, b, xp=xp)


def _linreg(X: Any, w: Any, b: Any, *, xp: Any) -> Any:
    return X @ w + b


def squared_loss(y_hat: Any, y: Any) -> Any:
    r"""Mean squared loss :math:`\frac1m\sum_i \tfrac12(\hat y_i - y_i)^2`, a 0-d array.

    Parameters
    ----------
    y_hat : array, shape (m, 1) or (m,)
        Predictions.
    y : array, shape (m,) or (m, 1)
        Labels; reshaped like ``y_hat`` (as D2L's ``squared_loss``).

    Returns
    -------
    array, 0-d

    Examples
    --------
    >>> import numpy as np
    >>> float(squared_loss(np.array([[1.0], [3.0]]), np.array([0.0, 1.0])))
    1.25
    """
    xp = array_namespace(y_hat, y, name="y_hat, y")
    if y_hat.shape[0] != y.shape[0] or math.prod(y_hat.shape) != math.prod(y.shape):
        raise ValueError(f"y_hat of shape {tuple(y_hat.shape)} and y of shape {tuple(y.shape)} do not match")
    return _squared_loss(y_hat, y, xp=xp)


def _squared_loss(y_hat: Any, y: Any, *, xp: Any) -> Any:
    r = y_hat - xp.reshape(y, y_hat.shape)
    return xp.mean(r * r) / 2.0


def grad_squared_loss(X: Any, y: Any, w: Any, b: Any) -> tuple[Any, Any]:
    r"""Hand-written gradient of :func:`squared_loss` of :func:`linreg` with respect to ``w`` and ``b``.

    .. math::

        r = Xw + b - y, \qquad \nabla_w L = \tfrac1m X^\top r, \qquad \nabla_b L = \tfrac1m \textstyle\sum_i r_i

    Parameters
    ----------
    X : array, shape (m, d)
    y : array, shape (m,)
    w : array, shape (d, 1)
    b : array, shape (1,)

    Returns
    -------
    grad_w : array, shape (d, 1)
    grad_b : array, shape (1,)

    Examples
    --------
    >>> import numpy as np
    >>> X, y = np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([1.0, 0.0])
    >>> grad_squared_loss(X, y, np.zeros((2, 1)), np.zeros(1))
    (array([[-0.5],
           [ 0. ]]), array([-0.5]))
    """
    xp = array_namespace(X, y, w, b, name="X, y, w, b")
    _check(X, w, b, y)
    return _grad_squared_loss(X, xp.reshape(y, (X.shape[0], 1)), w, b, xp=xp)


def _grad_squared_loss(X: Any, y_col: Any, w: Any, b: Any, *, xp: Any) -> tuple[Any, Any]:
    """:func:`grad_squared_loss` without checks, the labels given as a column ``y_col`` of shape (m, 1)."""
    m = X.shape[0]
    r = X @ w + b - y_col
    grad_w = (X.mT @ r) / float(m)
    grad_b = xp.sum(r, axis=0) / float(m)
    return grad_w, grad_b
