"""A load that fails leaves everything as it was, and the ``skipped`` counter survives every round trip.

A checkpoint can pass its checksum and still fail late, in :meth:`adam_np.Adam.load_state_dict` (a crafted or
foreign file: an invalid hyper-parameter, a moment of the wrong shape, a negative counter...). Then the
parameters, the moments (which kernel-backed optimizers update in place, in their own or flat buffers), the
counters, the config and the data-order generator must be exactly as before, and the next step must be the
one an optimizer that never saw the file takes.
"""

from __future__ import annotations

import numpy as np
import pytest

from adam_np import Adam, AdamConfig, AdamState, checkpoint
from adam_np.book.chapter7 import AdamRule
from adam_np.book.data import make_synthetic
from adam_np.book.resume import load_run, save_run
from adam_np.book.train import init_train, run_train
from adam_np.checkpoint import CheckpointError

SHAPES = [(4, 3), (3,)]


def _grads(seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for shape in SHAPES]


def _optimizer(kind, seed=0, steps=3, **kw):
    """An optimizer in a non-trivial state: plain arrays with the numpy kernel, the flat buffers of
    ``from_shapes``, or the pure path (a non-contiguous parameter)."""
    rng = np.random.default_rng(seed)
    if kind == "flat":
        opt = Adam.from_shapes(SHAPES, lr=0.05, backend="numpy", **kw)
        for p in opt.params:
            p[...] = rng.standard_normal(p.shape)
    elif kind == "kernel":
        opt = Adam([rng.standard_normal(s) for s in SHAPES], lr=0.05, backend="numpy", **kw)
    else:  # a strided view: no kernel, adam_np.update
        opt = Adam([rng.standard_normal((4, 6))[:, ::2], rng.standard_normal(3)], lr=0.05, **kw)
    for i in range(steps):
        opt.step(_grads(100 + seed * 10 + i))
    return opt


def _snapshot(opt):
    st = opt.state
    arrays = [*opt.params, *st.v, *st.s, *(st.master or []), *(st.s_max or [])]
    return (st.step, st.skipped, st.mu_product, opt.config, [np.asarray(a).tobytes() for a in arrays])


def _craft(path, change, tmp_path):
    members, meta = checkpoint.read_verified(path, "adam_np.checkpoint", checkpoint.FORMAT_VERSION)
    change(members, meta)
    out = tmp_path / "crafted.npz"
    checkpoint.write_atomic(out, members, meta)
    return out


def _set_config(**kw):
    return lambda members, meta: meta["config"].update(kw)


def _set_meta(**kw):
    return lambda members, meta: meta.update(kw)


def _put(name, value):
    return lambda members, meta: members.__setitem__(name, value)


def _add_s_max(members, meta):
    meta["s_max"] = True
    members["s_max/0"], members["s_max/1"] = np.ones((4, 3)), np.ones(3)


LATE_FAILURES = {  # each passes the checksum and read(); load_state_dict refuses it
    "beta1": (_set_config(beta1=1.5), r"beta1"),
    "variant": (_set_config(variant={"name": "nosuch"}), r"variant"),
    "v-shape": (_put("v/1", np.zeros(4)), r"v\[1\] has shape"),
    "s-dtype": (_put("s/1", np.zeros(3, np.float32)), r"dtype"),
    "skipped": (_set_meta(skipped=-1), r"skipped"),
    "step": (_set_meta(step=-2), r"step"),
    "s_max": (_add_s_max, r"s_max"),
    "mu_product": (_set_meta(mu_product="x"), r"mu_product"),
}


@pytest.mark.parametrize("kind", ["kernel", "flat", "pure"])
@pytest.mark.parametrize("failure", list(LATE_FAILURES))
def test_load_that_fails_late_changes_nothing(tmp_path, kind, failure):
    change, match = LATE_FAILURES[failure]
    source = _optimizer("kernel", seed=1, steps=5)
    path = tmp_path / "c.npz"
    source.save(path, rng=np.random.default_rng(7), extra={"epoch": 3})
    crafted = _craft(path, change, tmp_path)

    target, twin = _optimizer(kind, seed=2), _optimizer(kind, seed=2)
    rng = np.random.default_rng(11)
    before, rng_before = _snapshot(target), rng.bit_generator.state
    with pytest.raises(CheckpointError, match=match):
        target.load(crafted, rng=rng)
    assert _snapshot(target) == before
    assert rng.bit_generator.state == rng_before
    # ...and it goes on exactly as the twin that never saw the file (no stale kernel buffers or config).
    for i in range(2):
        target.step(_grads(900 + i))
        twin.step(_grads(900 + i))
    assert _snapshot(target) == _snapshot(twin)


def test_load_with_a_foreign_rng_changes_nothing(tmp_path):
    source = _optimizer("kernel", seed=1, steps=4)
    path = tmp_path / "c.npz"
    source.save(path, rng=np.random.default_rng(7))
    target = _optimizer("flat", seed=2)
    rng, rng_twin = np.random.Generator(np.random.MT19937(3)), np.random.Generator(np.random.MT19937(3))
    before = _snapshot(target)
    with pytest.raises(CheckpointError, match="rng state"):
        target.load(path, rng=rng)
    assert _snapshot(target) == before
    assert np.array_equal(rng.integers(0, 2**62, 8), rng_twin.integers(0, 2**62, 8))


def _state_dict_changes():
    def s_shape(sd):
        sd["s"][1] = np.zeros(4)

    def v_dtype(sd):
        sd["v"][0] = sd["v"][0].astype(np.float32)

    def bad_config(sd):
        sd["config"]["eps"] = -1.0

    def negative_skipped(sd):
        sd["skipped"] = -3

    def wrong_count(sd):
        sd["v"] = sd["v"][:1]

    def new_config_bad_moment(sd):  # a valid config of its own, refused only for a later field
        sd["config"].update(lr=0.125, beta1=0.5)
        s_shape(sd)

    def new_config_negative_skipped(sd):
        sd["config"].update(eps=1e-3)
        negative_skipped(sd)

    return {"s-shape": s_shape, "v-dtype": v_dtype, "config": bad_config, "skipped": negative_skipped,
            "count": wrong_count, "config+s-shape": new_config_bad_moment,
            "config+skipped": new_config_negative_skipped}


STATE_DICT_CHANGES = _state_dict_changes()


@pytest.mark.parametrize("kind", ["kernel", "flat", "pure"])
@pytest.mark.parametrize("change", list(STATE_DICT_CHANGES))
def test_load_state_dict_that_fails_changes_nothing(kind, change):
    sd = _optimizer("kernel", seed=3, steps=4).state_dict()
    STATE_DICT_CHANGES[change](sd)
    target, twin = _optimizer(kind, seed=4), _optimizer(kind, seed=4)
    before = _snapshot(target)
    with pytest.raises((TypeError, ValueError)):
        target.load_state_dict(sd)
    assert _snapshot(target) == before
    target.step(_grads(5))
    twin.step(_grads(5))
    assert _snapshot(target) == _snapshot(twin)


def test_failed_book_resume_leaves_the_running_run_alone(tmp_path):
    """``load_run`` of a crafted file fails; the run in memory (an in-place Adam) goes on as if nothing happened."""
    X, y, _, _ = make_synthetic(n=40, d=3, seed=2)
    settings = {"batch_size": 10}

    def run(rule, stop):
        return run_train(init_train(rule, X, y, seed=4), rule, X, y, batch_size=10, num_epochs=2,
                         on_step=lambda s: s.examples_seen == stop)

    rule = AdamRule(in_place=True)
    state = run(rule, 30)
    path = tmp_path / "run.npz"
    save_run(path, state, rule, X, y, settings=settings)
    members, meta = checkpoint.read_verified(path, checkpoint.FORMAT_NAME, checkpoint.FORMAT_VERSION)
    meta["skipped"] = -1  # fails after the parameters and moments have been read
    members["v/0"] = members["v/0"] + 1.0
    crafted = tmp_path / "crafted.npz"
    checkpoint.write_atomic(crafted, members, meta)

    before = [np.asarray(p).copy() for p in state.params], _snapshot(state.opt_state)
    with pytest.raises(CheckpointError):
        load_run(crafted, rule, X, y, settings=settings)
    assert all(np.array_equal(a, b) for a, b in zip(before[0], state.params))
    assert _snapshot(state.opt_state) == before[1]
    resumed = run_train(state, rule, X, y, batch_size=10, num_epochs=2)
    full = run_train(init_train(AdamRule(in_place=True), X, y, seed=4), AdamRule(in_place=True), X, y,
                     batch_size=10, num_epochs=2)
    assert resumed.losses == full.losses


# --- the skipped counter ----------------------------------------------------------------------------------------


def _skipping(kind="kernel"):
    opt = _optimizer(kind, seed=5, steps=2, nonfinite="skip")
    for bad in (np.nan, np.inf):
        g = _grads(50)
        g[1][0] = bad
        opt.step(g)
    opt.step(_grads(51))
    assert (opt.state.step, opt.state.skipped) == (3, 2)
    return opt


@pytest.mark.parametrize("kind", ["kernel", "flat", "pure"])
def test_skipped_survives_save_and_load(tmp_path, kind):
    opt = _skipping(kind)
    path = tmp_path / "skip.npz"
    opt.save(path)
    assert checkpoint.read(path).skipped == 2
    other = _optimizer(kind, seed=9, steps=0, nonfinite="skip")
    ck = other.load(path)
    assert ck.skipped == 2 and (other.state.step, other.state.skipped) == (3, 2)
    assert _snapshot(other) == _snapshot(opt)
    g = _grads(52)
    g[0][0, 0] = np.nan
    other.step(g)  # counting goes on from the saved value
    assert (other.state.step, other.state.skipped) == (3, 3)


def test_skipped_survives_state_dict():
    opt = _skipping()
    sd = opt.state_dict()
    assert sd["skipped"] == 2
    other = _optimizer("flat", seed=9, steps=0, nonfinite="skip")
    other.load_state_dict(sd)
    assert (other.state.step, other.state.skipped) == (3, 2)


@pytest.mark.parametrize("in_place", [False, True])
def test_skipped_survives_a_book_run_checkpoint(tmp_path, in_place):
    X, y, _, _ = make_synthetic(n=30, d=2, seed=1)
    rule = AdamRule(config=AdamConfig(lr=0.01, nonfinite="skip"), in_place=in_place)
    state = init_train(rule, X, y, seed=1)
    bad = [np.full_like(np.asarray(p), np.nan) for p in state.params]
    params, opt_state = rule.update(bad, state.opt_state, state.params)
    params, opt_state = rule.update(bad, opt_state, params)
    state.params, state.opt_state = params, opt_state
    adam_state = opt_state.state if in_place else opt_state
    assert isinstance(adam_state, AdamState) and (adam_state.step, adam_state.skipped) == (0, 2)
    path = tmp_path / "run.npz"
    save_run(path, state, rule, X, y, settings={"batch_size": 10})
    loaded = load_run(path, rule, X, y, settings={"batch_size": 10})
    got = loaded.opt_state.state if in_place else loaded.opt_state
    assert (got.step, got.skipped) == (0, 2)


@pytest.mark.parametrize("change, match", [
    (_put("junk", np.zeros(2)), r"unexpected members \['junk'\]"),
    (_put("v/2", np.zeros(3)), r"unexpected members \['v/2'\]"),
    (lambda members, meta: members.pop("s/1"), r"lacks some of"),
], ids=["junk", "extra-moment", "missing-moment"])
def test_members_other_than_the_declared_ones_are_refused(tmp_path, change, match):
    source = _optimizer("kernel", seed=1, steps=2)
    path = tmp_path / "c.npz"
    source.save(path)
    crafted = _craft(path, change, tmp_path)
    with pytest.raises(CheckpointError, match=match):
        checkpoint.read(crafted)
    target = _optimizer("kernel", seed=2)
    before = _snapshot(target)
    with pytest.raises(CheckpointError, match=match):
        target.load(crafted)
    assert _snapshot(target) == before
