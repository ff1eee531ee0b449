"""adam_np.book.linreg: model, loss and hand-written gradients vs finite differences and torch autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from adam_np.book.linreg import grad_squared_loss, linreg, squared_loss

from conftest import to_numpy


def _problem(seed: int, m: int, d: int):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, d)), rng.standard_normal(m), rng.standard_normal((d, 1)), rng.standard_normal(1)


def _loss(X, y, w, b) -> float:
    return float(squared_loss(linreg(X, w, b), y))


@settings(max_examples=40)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 12), d=st.integers(1, 7))
def test_gradient_equals_central_finite_differences(seed, m, d):
    X, y, w, b = _problem(seed, m, d)
    gw, gb = grad_squared_loss(X, y, w, b)
    h = 1e-6
    fd_w = np.zeros_like(w)
    for j in range(d):
        e = np.zeros_like(w)
        e[j, 0] = h
        fd_w[j, 0] = (_loss(X, y, w + e, b) - _loss(X, y, w - e, b)) / (2 * h)
    fd_b = (_loss(X, y, w, b + h) - _loss(X, y, w, b - h)) / (2 * h)
    scale = 1.0 + np.abs(fd_w).max()
    np.testing.assert_allclose(gw, fd_w, atol=1e-7 * scale, rtol=1e-6)
    np.testing.assert_allclose(gb, [fd_b], atol=1e-7 * scale, rtol=1e-6)


@pytest.mark.parametrize("m, d", [(1, 1), (10, 5), (37, 3)])
def test_gradient_equals_torch_autograd(m, d):
    X, y, w, b = _problem(m * d, m, d)
    tw = torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    y_hat = torch.tensor(X) @ tw + tb
    loss = ((y_hat - torch.tensor(y).reshape(y_hat.shape)) ** 2 / 2).mean()  # D2L: squared_loss(...).mean()
    loss.backward()
    gw, gb = grad_squared_loss(X, y, w, b)
    np.testing.assert_allclose(_loss(X, y, w, b), loss.item(), rtol=1e-14)
    np.testing.assert_allclose(gw, tw.grad.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gb, tb.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_values_small_case():
    X = np.array([[1.0, 2.0], [3.0, 4.0]])
    w, b, y = np.array([[1.0], [-1.0]]), np.array([0.5]), np.array([0.0, 1.0])
    np.testing.assert_array_equal(linreg(X, w, b), [[-0.5], [-0.5]])
    assert float(squared_loss(linreg(X, w, b), y)) == (0.25 + 2.25) / 4


def test_any_namespace_and_dtype_kept(xp):
    X, y, w, b = _problem(0, 6, 3)
    ref = grad_squared_loss(X, y, w, b)
    args = [xp.asarray(a, dtype=xp.float32) for a in (X, y, w, b)]
    gw, gb = grad_squared_loss(*args)
    assert gw.dtype == xp.float32 and tuple(gw.shape) == (3, 1) and tuple(gb.shape) == (1,)
    np.testing.assert_allclose(to_numpy(gw), ref[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(to_numpy(gb), ref[1], rtol=1e-5, atol=1e-6)
    loss = squared_loss(linreg(args[0], args[2], args[3]), args[1])
    np.testing.assert_allclose(float(loss), _loss(X, y, w, b), rtol=1e-5)


@pytest.mark.parametrize("shapes, match", [
    (((5,), (3,), (5, 1), (1,)), "X must be 2-D"),
    (((3, 5), (3,), (4, 1), (1,)), r"w must have shape \(5, 1\)"),
    (((3, 5), (3,), (5, 1), (2,)), r"b must have shape \(1,\), got \(2,\)"),
    (((3, 5), (4,), (5, 1), (1,)), r"y must have shape \(3,\)"),
])
def test_shape_errors(shapes, match):
    X, y, w, b = (np.zeros(s) for s in shapes)
    with pytest.raises(ValueError, match=match):
        grad_squared_loss(X, y, w, b)


def test_loss_shape_mismatch():
    with pytest.raises(ValueError, match="do not match"):
        squared_loss(np.zeros((3, 1)), np.zeros(4))
