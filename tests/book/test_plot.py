"""adam_np.book.plot: the numbers behind the figures, and that the PNGs are real images."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread

from adam_np.book import plot
from adam_np.book.chapter7 import SGD, make_optimizer
from adam_np.book.data import make_synthetic
from adam_np.book.train import train_ch7


@pytest.mark.parametrize("beta1, step", [(0.9, 1), (0.9, 10), (0.5, 7), (0.0, 3)])
def test_gradient_weights_sum(beta1, step):
    raw = plot.gradient_weights(beta1, step, corrected=False)
    corrected = plot.gradient_weights(beta1, step, corrected=True)
    assert raw.shape == (step,)
    np.testing.assert_allclose(raw.sum(), 1 - beta1**step, rtol=1e-14)
    np.testing.assert_allclose(corrected.sum(), 1.0, rtol=1e-14)
    assert np.all(np.diff(raw) >= 0)  # recent gradients weigh most


def test_gradient_weights_validation():
    with pytest.raises(ValueError, match="beta1 must be in"):
        plot.gradient_weights(1.0, 3, corrected=True)
    with pytest.raises(ValueError, match="step must be an int >= 1, got 0"):
        plot.gradient_weights(0.9, 0, corrected=True)


def test_sgd_trajectory_closed_form():
    pts = plot.trajectory(SGD(lr=0.4), steps=6)
    k = np.arange(7)
    np.testing.assert_allclose(pts[:, 0], -5 * (1 - 0.4 * 0.2) ** k)
    np.testing.assert_allclose(pts[:, 1], -2 * (1 - 0.4 * 4) ** k)


@pytest.mark.parametrize("name", sorted(plot.TRAJECTORY_RULES))
def test_demo_rules_head_for_the_minimum(name):
    pts = plot.trajectory(plot.TRAJECTORY_RULES[name])
    assert plot.f_2d(*pts[-1]) < 0.5 * plot.f_2d(*pts[0])


def _image(path):
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 300
    assert img[..., :3].std() > 0.05  # not a blank canvas
    return img


def test_pngs(tmp_path):
    X, y, _, _ = make_synthetic(n=200)
    results = [train_ch7(make_optimizer(n), X, y, seed=0) for n in ("adam", "sgd")]
    _image(plot.plot_loss(results, tmp_path / "a" / "loss.png", title="t"))
    _image(plot.plot_weights(tmp_path / "w.png", beta1=0.8, step=6))
    _image(plot.plot_trajectories(tmp_path / "t.png", steps=10))


def test_png_suffix_required(tmp_path):
    with pytest.raises(ValueError, match="path must end in .png"):
        plot.plot_weights(tmp_path / "w.jpg")
