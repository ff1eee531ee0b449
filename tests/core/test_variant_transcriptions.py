"""Each variant against a transcription of its paper's (or framework's) formula, step by step.

test_variants.py checks structure (signs, monotone maxima, namespaces); these tests pin the arithmetic:
each reference below is written from the formula in the paper / the framework's documentation with
plain NumPy float64, sharing nothing with adam_np but the inputs. 12 steps cover RAdam's switch from the
un-rectified phase (rho_t <= 5, steps 1-5 for beta2 = 0.999) to the rectified one; the gradients shrink
so that AMSGrad's running maximum, not the current second moment, sets the later steps.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import adam_np
from adam_np import variants

STEPS = 12
LR, B1, B2, EPS = 0.01, 0.9, 0.999, 1e-8


def _grads(seed=0, n=7):
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.uniform(-2, 1, size=n)
    # Gradients that shrink by half each step: from step ~5 on g^2 < s, so AMSGrad's maximum binds.
    return [rng.normal(size=n) * scale * 0.5**t for t in range(STEPS)], rng.normal(size=n)


def _run(config, x0, grads):
    x, state, path = x0.copy(), adam_np.init(x0, config), []
    for g in grads:
        x, state = adam_np.update(g, state, x, config)
        path.append(x)
    return np.array(path)


def _normwise(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def amsgrad_torch(x, grads, lr=LR, b1=B1, b2=B2, eps=EPS):
    """Reddi et al. 2018 as torch.optim.Adam(amsgrad=True): max over the raw s, then bias-correct."""
    v = s = s_max = np.zeros_like(x)
    out = []
    for t, g in enumerate(grads, 1):
        v = b1 * v + (1 - b1) * g
        s = b2 * s + (1 - b2) * g * g
        s_max = np.maximum(s_max, s)
        x = x - lr / (1 - b1**t) * v / (np.sqrt(s_max) / math.sqrt(1 - b2**t) + eps)
        out.append(x)
    return np.array(out)


def amsgrad_optax(x, grads, lr=LR, b1=B1, b2=B2, eps=EPS):
    """optax.amsgrad: the maximum of the bias-corrected second moment."""
    v = s = m = np.zeros_like(x)
    out = []
    for t, g in enumerate(grads, 1):
        v = b1 * v + (1 - b1) * g
        s = b2 * s + (1 - b2) * g * g
        m = np.maximum(m, s / (1 - b2**t))
        x = x - lr * (v / (1 - b1**t)) / (np.sqrt(m) + eps)
        out.append(x)
    return np.array(out)


def _adam_direction(v, s, t, b1=B1, b2=B2, eps=EPS):
    return (v / (1 - b1**t)) / (np.sqrt(s / (1 - b2**t)) + eps)


def adamw_torch(x, grads, wd, lr=LR, b1=B1, b2=B2):
    """Loshchilov & Hutter 2019 as torch.optim.AdamW: x <- (1 - lr wd) x, then the Adam step."""
    v = s = np.zeros_like(x)
    out = []
    for t, g in enumerate(grads, 1):
        x = x * (1 - lr * wd)
        v = b1 * v + (1 - b1) * g
        s = b2 * s + (1 - b2) * g * g
        x = x - lr * _adam_direction(v, s, t)
        out.append(x)
    return np.array(out)


def adamw_optax(x, grads, wd, lr=LR, b1=B1, b2=B2):
    """optax.adamw: x <- x - lr (u + wd x), u the Adam direction."""
    v = s = np.zeros_like(x)
    out = []
    for t, g in enumerate(grads, 1):
        v = b1 * v + (1 - b1) * g
        s = b2 * s + (1 - b2) * g * g
        x = x - lr * (_adam_direction(v, s, t) + wd * x)
        out.append(x)
    return np.array(out)


def adamax_paper(x, grads, lr=2e-3, b1=B1, b2=B2, eps=EPS):
    """Kingma & Ba 2014, section 7.1, with torch's eps inside the max: u = max(b2 u, |g| + eps)."""
    v = u = np.zeros_like(x)
    out = []
    for t, g in enumerate(grads, 1):
        v = b1 * v + (1 - b1) * g
        u = np.maximum(b2 * u, np.abs(g) + eps)
        x = x - (lr / (1 - b1**t)) * v / u
        out.append(x)
    return np.array(out)


def nadam_torch(x, grads, lr=2e-3, b1=B1, b2=B2, eps=EPS, psi=4e-3):
    """Dozat 2016 with torch's momentum schedule mu_t = b1 (1 - 0.5 * 0.96^(t psi))."""
    v = s = np.zeros_like(x)
    prod, out = 1.0, []
    for t, g in enumerate(grads, 1):
        mu = b1 * (1 - 0.5 * 0.96 ** (t * psi))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
        prod *= mu
        v = b1 * v + (1 - b1) * g
        s = b2 * s + (1 - b2) * g * g
        denom = np.sqrt(s / (1 - b2**t)) + eps
        x = x - lr * (1 - mu) / (1 - prod) * g / denom - lr * mu_next / (1 - prod * mu_next) * v / denom
        out.append(x)
    return np.array(out)


def nadam_optax(x, grads, lr=LR, b1=B1, b2=B2, eps=EPS):
    """optax.nadam (nesterov=True): v_hat = b1 v / (1 - b1^(t+1)) + (1 - b1) g / (1 - b1^t)."""
    v = s = np.zeros_like(x)
    out = []
    for t, g in enumerate(grads, 1):
        v = b1 * v + (1 - b1) * g
        s = b2 * s + (1 - b2) * g * g
        v_hat = b1 * v / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
        x = x - lr * v_hat / (np.sqrt(s / (1 - b2**t)) + eps)
        out.append(x)
    return np.array(out)


def radam_paper(x, grads, eps_hat, lr=LR, b1=B1, b2=B2, eps=EPS):
    """Liu et al. 2020, Algorithm 2: SGD with momentum while rho_t <= 5, then the rectified Adam step."""
    v = s = np.zeros_like(x)
    rho_inf = 2 / (1 - b2) - 1
    out = []
    for t, g in enumerate(grads, 1):
        v = b1 * v + (1 - b1) * g
        s = b2 * s + (1 - b2) * g * g
        v_hat = v / (1 - b1**t)
        rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho > 5:
            r = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            if eps_hat:  # torch: sqrt(1 - b2^t) / (sqrt(s) + eps)
                x = x - lr * r * v_hat * math.sqrt(1 - b2**t) / (np.sqrt(s) + eps)
            else:  # optax: eps outside sqrt(s_hat)
                x = x - lr * r * v_hat / (np.sqrt(s / (1 - b2**t)) + eps)
        else:
            x = x - lr * v_hat
        out.append(x)
    return np.array(out)


def yogi_paper(x, grads, lr=LR, b1=B1, b2=B2, eps=1e-3, s0=1e-6):
    """Zaheer et al. 2018: s <- s - (1 - b2) sign(s - g^2) g^2, both moments from 1e-6 (optax)."""
    v, s = np.full_like(x, s0), np.full_like(x, s0)
    out = []
    for t, g in enumerate(grads, 1):
        v = b1 * v + (1 - b1) * g
        s = s - (1 - b2) * np.sign(s - g * g) * g * g
        x = x - lr * (v / (1 - b1**t)) / (np.sqrt(s / (1 - b2**t)) + eps)
        out.append(x)
    return np.array(out)


CASES = {
    "amsgrad-raw": (variants.amsgrad(lr=LR), amsgrad_torch),
    "amsgrad-corrected": (variants.amsgrad(max="corrected", lr=LR), amsgrad_optax),
    "adamw-decoupled": (variants.adamw(weight_decay=0.1, lr=LR), lambda x, gs: adamw_torch(x, gs, 0.1)),
    "adamw-decoupled_add": (variants.adamw(weight_decay=0.1, mode="decoupled_add", lr=LR),
                            lambda x, gs: adamw_optax(x, gs, 0.1)),
    "adamax": (variants.adamax(), adamax_paper),
    "nadam-decay": (variants.nadam(), nadam_torch),
    "nadam-constant": (variants.nadam(schedule="constant", lr=LR), nadam_optax),
    "radam-outside": (variants.radam(lr=LR), lambda x, gs: radam_paper(x, gs, eps_hat=False)),
    "radam-hat": (variants.radam(lr=LR, eps_mode="hat"), lambda x, gs: radam_paper(x, gs, eps_hat=True)),
    "yogi": (variants.yogi(lr=LR), yogi_paper),
}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", sorted(CASES))
def test_variant_follows_its_formula(name, seed):
    config, reference = CASES[name]
    grads, x0 = _grads(seed)
    got, ref = _run(config, x0, grads), reference(x0.copy(), grads)
    assert got.shape == ref.shape == (STEPS, x0.size)
    assert _normwise(got, ref) <= 1e-13, f"{name}: {_normwise(got, ref):.2e}"


def test_radam_passes_through_both_phases():
    """The reference switches at step 6 for beta2 = 0.999: rho_5 ~ 4.99, rho_6 ~ 5.99."""
    rho_inf = 2 / (1 - B2) - 1
    rho = [rho_inf - 2 * t * B2**t / (1 - B2**t) for t in (5, 6)]
    assert rho[0] <= 5 < rho[1]


def test_transcriptions_tell_the_variants_apart():
    """The references are not all the same formula: each differs from plain Adam by far more than the bound."""
    grads, x0 = _grads(0)
    plain = _run(adam_np.AdamConfig(lr=LR), x0, grads)
    for name, (_, reference) in CASES.items():
        assert _normwise(reference(x0.copy(), grads), plain) > 1e-6, name
