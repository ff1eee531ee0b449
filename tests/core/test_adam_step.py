"""adam_step: Algorithm 1 on one array, and update() runs exactly it for a textbook config."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adam_np
from adam_np import AdamConfig
from adam_np.core import adam as core
from adam_np.core._xp import namespace_for

XP = namespace_for("numpy")


def _paper(x, g, v, s, t, lr, beta1, beta2, eps):
    """Algorithm 1 element by element in Python floats, written from the paper."""
    out = []
    for xi, gi, vi, si in zip(x, g, v, s):
        m = beta1 * vi + (1 - beta1) * gi
        u = beta2 * si + (1 - beta2) * gi * gi
        m_hat = m / (1 - beta1**t)
        u_hat = u / (1 - beta2**t)
        out.append((xi - lr * m_hat / (math.sqrt(u_hat) + eps), m, u))
    return [np.array(c) for c in zip(*out)]


@settings(max_examples=50)
@given(t=st.integers(1, 200), seed=st.integers(0, 2**32 - 1), lr=st.sampled_from([1e-3, 0.01, 0.5]),
       beta1=st.sampled_from([0.0, 0.9]), beta2=st.sampled_from([0.9, 0.999]), eps=st.sampled_from([1e-8, 1e-6]))
def test_adam_step_is_algorithm_1(t, seed, lr, beta1, beta2, eps):
    rng = np.random.default_rng(seed)
    x, g, v = rng.normal(size=(3, 16))
    s = rng.normal(size=16) ** 2
    got = core.adam_step(x, g, v, s, t, lr=lr, beta1=beta1, beta2=beta2, eps=eps, xp=XP)
    ref = _paper(x, g, v, s, t, lr, beta1, beta2, eps)
    for a, b in zip(got, ref):  # the paper's 1 - beta**t is not correctly rounded: allow a few ulp of max|x|
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=4e-15 * max(1.0, float(np.max(np.abs(b)))))


def test_adam_step_leaves_its_inputs_alone():
    x, g, v, s = np.ones(3), np.full(3, 0.5), np.zeros(3), np.zeros(3)
    copies = [a.copy() for a in (x, g, v, s)]
    core.adam_step(x, g, v, s, 1, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, xp=XP)
    for a, b in zip((x, g, v, s), copies):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("config", [AdamConfig(), AdamConfig(lr=0.01, eps=1e-6, beta1=0.5)])
def test_update_is_adam_step_for_textbook_configs(config):
    """update computes adam_step's operations in its order for a config with nothing but lr, betas, eps."""
    x, y = [np.array([1.0, -2.0]), np.array([3.0])], [np.array([1.0, -2.0]), np.array([3.0])]
    v, s = [np.zeros(2), np.zeros(1)], [np.zeros(2), np.zeros(1)]
    state = adam_np.init(x, config)
    for t in (1, 2):
        g = [np.array([0.5, 0.25]), np.array([-1.0])]
        x, state = adam_np.update(g, state, x, config)
        for i in range(2):
            y[i], v[i], s[i] = core.adam_step(y[i], g[i], v[i], s[i], t, lr=config.lr, beta1=config.beta1,
                                              beta2=config.beta2, eps=config.eps, xp=XP)
        assert [a.tobytes() for a in x] == [a.tobytes() for a in y]


def test_update_equals_adam_step_bit_for_bit_on_a_textbook_config():
    rng = np.random.default_rng(0)
    config = AdamConfig(lr=0.01, eps=1e-6)
    x = rng.normal(size=50).astype(np.float32)
    state, (y, v, s) = adam_np.init(x), (x, np.zeros_like(x), np.zeros_like(x))
    for t in range(1, 31):
        g = rng.normal(size=50).astype(np.float32)
        x, state = adam_np.update(g, state, x, config)
        y, v, s = core.adam_step(y, g, v, s, t, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-6, xp=XP)
        assert x.dtype == y.dtype == np.float32
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(state.v, v)
        np.testing.assert_array_equal(state.s, s)


def test_adam_step_reads_like_the_paper():
    """The plain step stays a short function with no branch: the four lines a student should find."""
    import ast
    import inspect
    import textwrap

    source = textwrap.dedent(inspect.getsource(core.adam_step))
    body = ast.parse(source).body[0].body[1:]  # after the docstring
    assert len(body) <= 5
    assert not any(isinstance(node, (ast.If, ast.IfExp, ast.For, ast.While, ast.Match))
                   for stmt in body for node in ast.walk(stmt))
    function = ast.parse(source).body[0]
    docstring = function.body[0]
    code_lines = (docstring.lineno - function.lineno) + (function.end_lineno - docstring.end_lineno)
    assert code_lines <= 20
