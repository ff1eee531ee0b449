"""Hypothesis fuzzing of every public entry point: success, or an error naming the culprit, nothing mutated.

Each test draws a valid call and then zero or one corruption whose culprit is known, so the
oracle can demand (a) success iff nothing was corrupted, (b) a TypeError/ValueError/
FloatingPointError whose message names the corrupted parameter, and (c) params, grads and
state byte-identical after a failed call. 500 examples per entry point.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from adam_np import EPS_MODES, NONFINITE_POLICIES, Adam, AdamConfig, AdamState, checkpoint, init, update
from adam_np.checkpoint import CheckpointError

EXAMPLES = 500
ERRORS = (TypeError, ValueError, FloatingPointError)


def snap(tree):
    """Bytes, dtype and shape of every array in a container (ints and None as they are)."""
    if isinstance(tree, AdamState):
        return ("AdamState", *(snap(x) for x in tree))
    if isinstance(tree, dict):
        return {k: snap(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [snap(v) for v in tree]
    if isinstance(tree, torch.Tensor):
        return ("torch", str(tree.dtype), tuple(tree.shape), tree.detach().numpy().tobytes())
    if isinstance(tree, np.ndarray):
        return ("numpy", tree.dtype.str, tree.shape, tree.tobytes())
    return repr(tree)


def expect(call, culprits, *, snapshot):
    """Run ``call``; if ``culprits`` is empty it must succeed, else fail naming one of them. Nothing mutated."""
    before = snapshot()
    try:
        with np.errstate(all="ignore"):
            result = call()
    except ERRORS as exc:
        assert culprits, f"unexpected {type(exc).__name__}: {exc}"
        assert any(c in str(exc) for c in culprits), f"{exc!r} names none of {culprits}"
        assert snapshot() == before, "a failed call changed its inputs"
        return None
    assert not culprits, f"expected an error naming one of {culprits}, the call succeeded"
    return result


# ---- AdamConfig --------------------------------------------------------------------------------

ANY_VALUE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3), st.booleans(), st.none(),
    st.text(max_size=3), st.sampled_from([np.float32(0.5), np.float64(-1.0), np.int64(2), [0.9], (0.1,), {}]),
)


def _real_ok(v, lo, hi=math.inf, lo_open=False, hi_open=True):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
        return False
    v = float(v)
    return math.isfinite(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)


FIELD_OK = {
    "lr": lambda v: callable(v) or _real_ok(v, 0.0, lo_open=True),
    "beta1": lambda v: _real_ok(v, 0.0, 1.0),
    "beta2": lambda v: _real_ok(v, 0.0, 1.0),
    "eps": lambda v: _real_ok(v, 0.0, lo_open=True),  # eps = 0 makes a zero gradient's step 0/0: refused
    "weight_decay": lambda v: _real_ok(v, 0.0),
    "eps_mode": lambda v: isinstance(v, str) and v in EPS_MODES,
    "maximize": lambda v: isinstance(v, bool),
    "nonfinite": lambda v: isinstance(v, str) and v in NONFINITE_POLICIES,
}
FIELD_VALUES = {
    "lr": st.one_of(st.floats(1e-6, 1.0), ANY_VALUE, st.just(lambda t: 0.1)),
    "beta1": st.one_of(st.floats(0.0, 0.999), ANY_VALUE, st.just(1.0)),
    "beta2": st.one_of(st.floats(0.0, 0.9999), ANY_VALUE),
    "eps": st.one_of(st.floats(0.0, 1e-3), ANY_VALUE),
    "weight_decay": st.one_of(st.floats(0.0, 1.0), ANY_VALUE),
    "eps_mode": st.one_of(st.sampled_from(EPS_MODES), ANY_VALUE),
    "maximize": st.one_of(st.booleans(), ANY_VALUE),
    "nonfinite": st.one_of(st.sampled_from(NONFINITE_POLICIES), ANY_VALUE),
}


@settings(max_examples=EXAMPLES)
@given(st.fixed_dictionaries({}, optional=FIELD_VALUES))
def test_fuzz_adam_config(kwargs):
    bad = [name for name, value in kwargs.items() if not FIELD_OK[name](value)]
    config = expect(lambda: AdamConfig(**kwargs), bad, snapshot=lambda: repr(kwargs))
    if config is not None:
        for name in ("beta1", "beta2", "eps", "weight_decay"):
            assert type(getattr(config, name)) is float


# ---- shared drawing of parameter trees -----------------------------------------------------------

FLOATS = [np.float16, np.float32, np.float64]


@st.composite
def trees(draw, *, min_size=1):
    """A valid parameter container of float NumPy arrays: (tree, leaves, kind)."""
    kind = draw(st.sampled_from(["leaf", "list", "tuple", "dict"]))
    n = 1 if kind == "leaf" else draw(st.integers(min_size, 3))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    leaves = []
    for _ in range(n):
        shape = tuple(draw(st.lists(st.integers(0, 3), max_size=2)))
        dtype = draw(st.sampled_from(FLOATS))
        leaves.append(rng.standard_normal(shape).astype(dtype))
    return _build(kind, leaves), kind


def _build(kind, leaves):
    if kind == "leaf":
        return leaves[0]
    if kind == "list":
        return list(leaves)
    if kind == "tuple":
        return tuple(leaves)
    return {f"k{i}": x for i, x in enumerate(leaves)}


def _leaves(tree):
    if isinstance(tree, dict):
        return list(tree.values())
    if isinstance(tree, (list, tuple)):
        return list(tree)
    return [tree]


def _replace_leaf(tree, i, new):
    if isinstance(tree, dict):
        key = list(tree)[i]
        return {**tree, key: new}
    if isinstance(tree, (list, tuple)):
        items = list(tree)
        items[i] = new
        return type(tree)(items)
    return new


# ---- init ----------------------------------------------------------------------------------------

BAD_LEAVES = st.sampled_from([
    np.arange(3), np.array([True]), np.ones(2, dtype=np.complex128), 1.5, None, "x", [1.0, 2.0],
])


@settings(max_examples=EXAMPLES)
@given(trees(), st.data())
def test_fuzz_init(tree_kind, data):
    tree, _ = tree_kind
    culprits = []
    corruption = data.draw(st.sampled_from(["none", "leaf", "mixed", "container", "moment_dtype", "master"]))
    if corruption == "mixed" and len(_leaves(tree)) >= 2:  # one torch tensor among NumPy arrays
        tree = _replace_leaf(tree, 0, torch.ones(2))
        culprits = ["params"]
    elif corruption == "leaf":
        i = data.draw(st.integers(0, len(_leaves(tree)) - 1))
        tree = _replace_leaf(tree, i, data.draw(BAD_LEAVES))
        culprits = ["params"]
    elif corruption == "container":
        tree = data.draw(st.sampled_from([[], {}, (), 3, "abc", {1, 2}]))
        culprits = ["params"]
    moment_dtype = None
    if corruption == "moment_dtype":
        moment_dtype = data.draw(st.sampled_from([np.int32, "not-a-dtype", object(), np.bool_]))
        culprits = ["moment_dtype"]
    elif data.draw(st.booleans()):
        moment_dtype = data.draw(st.sampled_from(FLOATS))
    master = data.draw(st.sampled_from([1, "yes", 0.0])) if corruption == "master" else None
    if corruption == "master":
        culprits = ["master"]
    state = expect(lambda: init(tree, moment_dtype=moment_dtype, master=master), culprits,
                   snapshot=lambda: snap(tree))
    if state is not None:
        assert state.step == 0 and state.skipped == 0
        for x, v in zip(_leaves(tree), _leaves(state.v)):
            assert v.shape == x.shape and not v.any()


# ---- update --------------------------------------------------------------------------------------

@st.composite
def configs(draw):
    return AdamConfig(
        lr=draw(st.floats(1e-4, 0.5)), beta1=draw(st.floats(0.0, 0.99)), beta2=draw(st.floats(0.0, 0.999)),
        eps=draw(st.floats(1e-8, 1e-3)), eps_mode=draw(st.sampled_from(EPS_MODES)),
        weight_decay=draw(st.sampled_from([0.0, 0.01])), maximize=draw(st.booleans()),
        nonfinite=draw(st.sampled_from(NONFINITE_POLICIES)),
    )


UPDATE_CORRUPTIONS = [
    "none", "grads_shape", "grads_dtype", "grads_missing", "grads_kind", "grads_not_array", "grads_torch",
    "grads_nonfinite", "v_shape", "v_int", "s_dtype", "step_float", "step_negative", "step_bool", "skipped_bad",
    "state_type", "config_type", "params_int", "lr_schedule", "master_dtype",
]


def _corrupt_update(data, tree, grads, state, config):
    """Apply one drawn corruption; return (grads, state, params, config, culprits)."""
    c = data.draw(st.sampled_from(UPDATE_CORRUPTIONS))
    n = len(_leaves(tree))
    i = data.draw(st.integers(0, n - 1))
    g_i = _leaves(grads)[i]
    if c == "grads_shape":
        return _replace_leaf(grads, i, np.zeros((*g_i.shape, 2), g_i.dtype)), state, tree, config, ["grads"]
    if c == "grads_dtype":
        other = np.float64 if g_i.dtype != np.float64 else np.float32
        return _replace_leaf(grads, i, g_i.astype(other)), state, tree, config, ["grads"]
    if c == "grads_missing" and isinstance(grads, (list, tuple, dict)):
        smaller = dict(list(grads.items())[:-1]) if isinstance(grads, dict) else type(grads)(list(grads)[:-1])
        return smaller, state, tree, config, ["grads"]
    if c == "grads_kind":
        return (list(_leaves(grads)) if not isinstance(grads, list) else tuple(grads)), state, tree, config, ["grads"]
    if c == "grads_not_array":
        return _replace_leaf(grads, i, g_i.tolist()), state, tree, config, ["grads"]
    if c == "grads_torch":
        return _replace_leaf(grads, i, torch.from_numpy(g_i.copy())), state, tree, config, ["grads"]
    if c == "grads_nonfinite" and g_i.size:
        bad = g_i.copy()
        bad.flat[data.draw(st.integers(0, bad.size - 1))] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        grads = _replace_leaf(grads, i, bad)
        return grads, state, tree, config, (["grads"] if config.nonfinite == "raise" else [])
    if c == "v_shape":
        return grads, state._replace(v=_replace_leaf(state.v, i, np.zeros((7,)))), tree, config, ["state.v"]
    if c == "v_int":
        v_i = _leaves(state.v)[i]
        return grads, state._replace(v=_replace_leaf(state.v, i, v_i.astype(np.int64))), tree, config, ["state.v"]
    if c == "s_dtype":
        s_i = _leaves(state.s)[i]
        other = np.float64 if s_i.dtype != np.float64 else np.float32
        return grads, state._replace(s=_replace_leaf(state.s, i, s_i.astype(other))), tree, config, ["state.s"]
    if c == "step_float":
        return grads, state._replace(step=float(state.step)), tree, config, ["state.step"]
    if c == "step_negative":
        return grads, state._replace(step=-1 - state.step), tree, config, ["state.step"]
    if c == "step_bool":
        return grads, state._replace(step=True), tree, config, ["state.step"]
    if c == "skipped_bad":
        return grads, state._replace(skipped=data.draw(st.sampled_from([-1, 1.0, None, "0"]))), tree, config, [
            "state.skipped"]
    if c == "state_type":
        return grads, tuple(state), tree, config, ["state"]
    if c == "config_type":
        return grads, state, tree, config.to_dict(), ["config"]
    if c == "params_int":
        ints = _build_like(tree, [np.zeros(x.shape, np.int64) for x in _leaves(tree)])
        grads = _build_like(grads, [np.zeros(x.shape, np.int64) for x in _leaves(grads)])
        state = state._replace(v=ints, s=ints, master=None)
        return grads, state, ints, config, ["params"]
    if c == "lr_schedule":
        bad_lr = data.draw(st.sampled_from([-1.0, math.nan, "0.1", 0.0]))
        fields = {**config.to_dict(), "lr": (lambda t: bad_lr)}
        return grads, state, tree, AdamConfig(**fields), ["lr("]
    if c == "master_dtype" and state.master is not None:
        m_i = _leaves(state.master)[i]
        return grads, state._replace(master=_replace_leaf(state.master, i, m_i.astype(np.float16))), tree, config, [
            "state.master"]
    return grads, state, tree, config, []


def _build_like(tree, leaves):
    if isinstance(tree, dict):
        return dict(zip(tree, leaves))
    if isinstance(tree, (list, tuple)):
        return type(tree)(leaves)
    return leaves[0]


def _grads_like(tree, seed):
    rng = np.random.default_rng(seed)
    return _build_like(tree, [rng.standard_normal(x.shape).astype(x.dtype) for x in _leaves(tree)])


@settings(max_examples=EXAMPLES)
@given(trees(), configs(), st.integers(0, 3), st.data())
def test_fuzz_update(tree_kind, config, warm, data):
    tree, _ = tree_kind
    state = init(tree)
    with np.errstate(all="ignore"):
        for k in range(warm):
            tree, state = update(_grads_like(tree, k), state, tree, config)
    grads = _grads_like(tree, 99)
    grads, state, params, cfg, culprits = _corrupt_update(data, tree, grads, state, config)
    out = expect(lambda: update(grads, state, params, cfg), culprits,
                 snapshot=lambda: (snap(grads), snap(state), snap(params)))
    if out is not None:
        new_params, new_state = out
        finite = all(np.isfinite(g).all() for g in _leaves(grads))
        if finite or config.nonfinite == "propagate":
            assert new_state.step == state.step + 1 and new_state.skipped == state.skipped
        else:  # skip
            assert new_state.step == state.step and new_state.skipped == state.skipped + 1
            assert snap(new_params) == snap(params)
        for x, y in zip(_leaves(params), _leaves(new_params)):
            assert y.shape == x.shape and y.dtype == x.dtype


# ---- Adam.__init__ -------------------------------------------------------------------------------

@settings(max_examples=EXAMPLES)
@given(st.lists(st.sampled_from(FLOATS), min_size=1, max_size=3), st.data())
def test_fuzz_adam_init(dtypes, data):
    params = [np.ones(i + 1, dtype=dt) for i, dt in enumerate(dtypes)]
    fields = ("lr", "beta1", "beta2", "eps", "weight_decay", "nonfinite")
    kwargs = data.draw(st.fixed_dictionaries({}, optional={k: FIELD_VALUES[k] for k in fields}))
    culprits = [k for k, v in kwargs.items() if v is not None and not FIELD_OK[k](v)]
    c = data.draw(st.sampled_from(["none", "readonly", "int", "container", "config_and_kw", "unknown_option",
                                   "config_type", "torch_requires_grad"]))
    container = list
    if c == "readonly":
        i = data.draw(st.integers(0, len(params) - 1))
        params[i].flags.writeable = False
        culprits = culprits or [f"params[{i}]"]
    elif c == "int":
        params[0] = np.arange(2)
        culprits = culprits or ["params"]
    elif c == "container":
        container = data.draw(st.sampled_from(["dict", "iter", "array"]))
        culprits = culprits or ["params"]  # the hyper-parameters are checked first
    elif c == "torch_requires_grad":
        params = [torch.ones(2, requires_grad=True)]
        culprits = culprits or ["params[0]"]
    elif c == "config_and_kw":
        kwargs = {**kwargs, "config": AdamConfig(), "lr": 0.1}
        culprits = ["config"]
    elif c == "unknown_option":
        kwargs = {**kwargs, "momentum": 0.9}
        culprits = [*culprits, "momentum"]
    elif c == "config_type":
        kwargs = {"config": {"lr": 0.1}}
        culprits = ["config"]
    arg = {"list": params, "dict": dict(enumerate(params)), "iter": iter(params), "array": params[0]}[
        container if isinstance(container, str) else "list"]
    opt = expect(lambda: Adam(arg, **kwargs), culprits, snapshot=lambda: snap(params))
    if opt is not None:
        assert opt.params[0] is params[0] and opt.state.step == 0


# ---- Adam.step -----------------------------------------------------------------------------------

@settings(max_examples=EXAMPLES)
@given(st.lists(st.sampled_from(FLOATS), min_size=1, max_size=3), configs(), st.data())
def test_fuzz_adam_step(dtypes, config, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    params = [rng.standard_normal((i + 1, 2)).astype(dt) for i, dt in enumerate(dtypes)]
    opt = Adam(params, config=config)
    with np.errstate(all="ignore"):
        for _ in range(data.draw(st.integers(0, 2))):
            opt.step([rng.standard_normal(p.shape).astype(p.dtype) for p in params])
    grads = [rng.standard_normal(p.shape).astype(p.dtype) for p in params]
    c = data.draw(st.sampled_from(["none", "grads_container", "readonly", *UPDATE_CORRUPTIONS[1:8]]))
    culprits = []
    i = data.draw(st.integers(0, len(params) - 1))
    if c == "grads_container":
        grads = data.draw(st.sampled_from([{0: grads[0]}, grads[0], None]))
        culprits = ["grads"]
    elif c == "readonly":
        params[i].flags.writeable = False
        culprits = [f"params[{i}]"]
    elif c != "none":
        grads, culprits = _corrupt_grads(c, grads, i, config, data)
    expected = None
    if not culprits:
        with np.errstate(all="ignore"):
            expected = update([np.asarray(g) for g in grads], opt.state, [p.copy() for p in params], config)
    expect(lambda: opt.step(grads), culprits, snapshot=lambda: (snap(params), snap(opt.state), snap(grads)))
    if expected is not None:
        assert snap(params) == snap(expected[0]) and snap(opt.state) == snap(expected[1])


def _corrupt_grads(c, grads, i, config, data):
    g = grads[i]
    grads = list(grads)
    if c == "grads_shape":
        grads[i] = np.zeros((*g.shape, 2), g.dtype)
    elif c == "grads_dtype":
        grads[i] = g.astype(np.float64 if g.dtype != np.float64 else np.float32)
    elif c == "grads_missing":
        grads = grads[:-1]
    elif c == "grads_kind":
        grads = {k: x for k, x in enumerate(grads)}
    elif c == "grads_not_array":
        grads[i] = g.tolist()
    elif c == "grads_torch":
        grads[i] = torch.from_numpy(g.copy())
    elif c == "grads_nonfinite":
        grads[i] = g.copy()
        grads[i].flat[0] = data.draw(st.sampled_from([np.nan, np.inf]))
        return grads, (["grads"] if config.nonfinite == "raise" else [])
    return grads, ["grads"]


# ---- Adam.load_state_dict ------------------------------------------------------------------------

def _without(sd, key):
    return {k: v for k, v in sd.items() if k != key}


SD_CORRUPTIONS = {
    "not_dict": (lambda sd, d: [sd], ["state_dict"]),
    "missing": (lambda sd, d: _without(sd, d.draw(st.sampled_from(["step", "v", "s", "config", "version"]))),
                ["missing keys"]),
    "version": (lambda sd, d: {**sd, "version": d.draw(st.sampled_from([2, "1", 1.0, True, np.array(1), None]))},
                ["version"]),
    "step": (lambda sd, d: {**sd, "step": d.draw(st.sampled_from([1.0, -1, True, "3", np.float64(2), None, 2**63]))},
             ["step"]),
    "skipped": (lambda sd, d: {**sd, "skipped": d.draw(st.sampled_from([-2, 0.5, False, "x"]))}, ["skipped"]),
    "v_type": (lambda sd, d: {**sd, "v": d.draw(st.sampled_from([None, 3, "v", np.zeros(2)]))}, ["'v'"]),
    "v_len": (lambda sd, d: {**sd, "v": sd["v"][:-1] + [np.zeros(1)] * 2}, ["state.v"]),
    "s_shape": (lambda sd, d: {**sd, "s": [np.zeros((9,)) for _ in sd["s"]]}, ["state.s"]),
    "s_dtype": (lambda sd, d: {**sd, "s": [x.astype(np.int32) for x in sd["s"]]}, ["state.s"]),
    "s_torch": (lambda sd, d: {**sd, "s": [torch.from_numpy(x) for x in sd["s"]]}, ["state.s"]),
    "config_type": (lambda sd, d: {**sd, "config": [("lr", 0.1)]}, ["config"]),
    "config_field": (lambda sd, d: {**sd, "config": {**sd["config"], "momentum": 0.9}}, ["config"]),
    "config_value": (lambda sd, d: {**sd, "config": {**sd["config"], "beta1": d.draw(st.sampled_from(
        [1.0, -0.1, math.nan, "0.9"]))}}, ["beta1"]),
    "master": (lambda sd, d: {**sd, "master": d.draw(st.sampled_from([[np.zeros(1)], 5, "m"]))}, ["master"]),
}


@settings(max_examples=EXAMPLES)
@given(st.lists(st.sampled_from(FLOATS), min_size=1, max_size=3), st.integers(0, 3),
       st.sampled_from(["none", *SD_CORRUPTIONS]), st.data())
def test_fuzz_load_state_dict(dtypes, steps, corruption, data):
    rng = np.random.default_rng(steps)
    params = [rng.standard_normal(i + 2).astype(dt) for i, dt in enumerate(dtypes)]
    source = Adam([p.copy() for p in params], lr=0.05)
    for _ in range(steps):
        source.step([rng.standard_normal(p.shape).astype(p.dtype) for p in params])
    sd = source.state_dict()
    culprits = []
    if corruption != "none":
        make, culprits = SD_CORRUPTIONS[corruption]
        sd = make(sd, data)
    target = Adam(params, lr=0.5, beta1=0.5)
    expect(lambda: target.load_state_dict(sd), culprits, snapshot=lambda: (snap(params), snap(target.state),
                                                                             repr(target.config)))
    if not culprits:
        assert snap(target.state) == snap(source.state) and target.config == source.config


# ---- checkpoint.load of damaged files ------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "c.npz"
    params = [np.linspace(0, 1, 12).reshape(3, 4), np.arange(3.0)]
    opt = Adam(params, lr=0.1)
    opt.step([np.ones((3, 4)), np.ones(3)])
    checkpoint.save(path, opt, rng=np.random.default_rng(1), extra={"epoch": 3})
    return path.read_bytes(), snap(params), snap(opt.state)


@settings(max_examples=EXAMPLES)
@given(st.data())
def test_fuzz_checkpoint_damage(tmp_path_factory, checkpoint_bytes, data):
    original, saved_params, saved_state = checkpoint_bytes
    blob = bytearray(original)
    how = data.draw(st.sampled_from(["flip", "truncate", "zero_run"]))
    if how == "flip":
        for _ in range(data.draw(st.integers(1, 3))):
            blob[data.draw(st.integers(0, len(blob) - 1))] ^= data.draw(st.integers(1, 255))
    elif how == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    else:
        start = data.draw(st.integers(0, len(blob) - 1))
        end = min(len(blob), start + data.draw(st.integers(1, 64)))
        blob[start:end] = bytes(end - start)
    path = tmp_path_factory.getbasetemp() / "damaged.npz"
    path.write_bytes(bytes(blob))
    params = [np.full((3, 4), 5.0), np.full(3, 5.0)]
    opt = Adam(params, lr=0.1)
    rng = np.random.default_rng(7)
    before = (snap(params), snap(opt.state), str(rng.bit_generator.state))
    try:
        checkpoint.load(path, opt, rng=rng)
    except CheckpointError:
        assert (snap(params), snap(opt.state), str(rng.bit_generator.state)) == before
    else:  # damage in bytes nobody reads (e.g. a zip header copy): the content must be exactly the original
        assert snap(params) == saved_params and snap(opt.state) == saved_state
        assert str(rng.bit_generator.state) == str(np.random.default_rng(1).bit_generator.state)
