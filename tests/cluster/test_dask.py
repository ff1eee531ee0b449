"""Adam on Dask arrays: bit for bit the NumPy result, lazy, one pass, no partial step; the stateful Adam on a
dask.distributed cluster (started in-process by a fixture) with a graph that does not grow."""

from __future__ import annotations

import threading

import dask
import dask.array as da
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import adam_np
from adam_np import AdamConfig, variants

from conftest import assert_bitwise

CONFIGS = {
    "plain": AdamConfig(lr=0.05),
    "root": AdamConfig(lr=0.05, eps_mode="root", eps=1e-6),
    "hat": AdamConfig(lr=0.05, eps_mode="hat"),
    "folded": AdamConfig(lr=0.05),  # stepped with fold_bias_correction=True (FOLDED)
    "l2-maximize": AdamConfig(lr=0.05, weight_decay=0.1, maximize=True),
    "amsgrad": variants.amsgrad(lr=0.05),
    "amsgrad-corrected": variants.amsgrad(max="corrected", lr=0.05),
    "adamw": variants.adamw(weight_decay=0.1, lr=0.05),
    "adamw-add": variants.adamw(weight_decay=0.1, mode="decoupled_add", lr=0.05),
    "adamax": variants.adamax(),
    "nadam": variants.nadam(),
    "nadam-constant": variants.nadam(schedule="constant"),
    "radam": variants.radam(lr=0.05, beta2=0.9, threshold=4.0),  # rho_t > 4 from step 5: both phases
    "yogi": variants.yogi(lr=0.05),
}
FOLDED = {"folded"}

pytestmark = pytest.mark.slow  # a Dask cluster in every test (README: pytest -m "slow or not slow")


@st.composite
def chunked_problem(draw):
    """Two parameters with random shapes and random chunkings (uneven last chunks included)."""
    dtype = draw(st.sampled_from([np.float32, np.float64, np.float16]))
    shapes = [(draw(st.integers(1, 13)),), (draw(st.integers(1, 6)), draw(st.integers(1, 7)))]
    chunks = [tuple(draw(st.integers(1, max(1, d))) for d in shape) for shape in shapes]
    seed = draw(st.integers(0, 2**32 - 1))
    return dtype, shapes, chunks, seed


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=chunked_problem(), name=st.sampled_from(sorted(CONFIGS)),
       nonfinite=st.sampled_from(["propagate", "raise", "skip"]))
def test_dask_update_equals_numpy_bit_for_bit(problem, name, nonfinite):
    dtype, shapes, chunks, seed = problem
    config = AdamConfig.from_dict({**CONFIGS[name].to_dict(), "nonfinite": nonfinite})
    fold = name in FOLDED
    rng = np.random.default_rng(seed)
    x = [rng.normal(size=s).astype(dtype) for s in shapes]
    X = [da.from_array(a, chunks=c) for a, c in zip(x, chunks)]
    state, lazy_state = adam_np.init(x, config), adam_np.init(X, config)
    for _ in range(5):
        g = [(rng.normal(size=s) * 10.0 ** rng.uniform(-3, 1)).astype(dtype) for s in shapes]
        x, state = adam_np.update(g, state, x, config, fold_bias_correction=fold)
        X, lazy_state = adam_np.update([da.from_array(a, chunks=c) for a, c in zip(g, chunks)], lazy_state, X, config,
                                       fold_bias_correction=fold)
    assert lazy_state.step == state.step == 5 and lazy_state.skipped == state.skipped == 0
    for got, want in zip([*X, *lazy_state.v, *lazy_state.s], [*x, *state.v, *state.s]):
        assert isinstance(got, da.Array)
        assert_bitwise(got.compute(), want)
    for got, c in zip(X, chunks):  # chunked as the parameters
        assert got.chunksize == tuple(min(a, b) for a, b in zip(c, got.shape))
    if state.master is not None:
        for got, want in zip(lazy_state.master, state.master):
            assert_bitwise(got.compute(), want)
    if state.s_max is not None:
        for got, want in zip(lazy_state.s_max, state.s_max):
            assert_bitwise(got.compute(), want)


class ChunkReads:
    """Gradients whose chunks are produced by a counted function: how often was each chunk computed?"""

    def __init__(self, values: np.ndarray, chunks):
        self.count = 0
        self.lock = threading.Lock()
        self.values = values
        self.array = da.map_blocks(self._block, da.from_array(values, chunks=chunks), dtype=values.dtype,
                                   meta=np.empty((0,) * values.ndim, values.dtype))  # no call to infer it

    def _block(self, block):
        with self.lock:
            self.count += 1
        return block.copy()


@pytest.mark.parametrize("nonfinite", ["propagate", "raise", "skip"])
def test_building_computes_nothing_and_reads_each_chunk_once(nonfinite):
    x = np.linspace(-1.0, 1.0, 10)
    g = ChunkReads(np.cos(np.arange(10.0)), chunks=3)  # 4 chunks
    config = AdamConfig(lr=0.1, nonfinite=nonfinite)
    X = da.from_array(x, chunks=3)
    X1, state = adam_np.update(g.array, adam_np.init(X, config), X, config)
    if nonfinite == "propagate":
        assert g.count == 0  # lazy: nothing computed yet
        X1, v, s = dask.persist(X1, state.v, state.s)
    assert g.count == 4  # the step and the finiteness check share each chunk: read once
    assert_bitwise(X1.compute(), adam_np.update(g.values, adam_np.init(x, config), x, config)[0])
    assert g.count == 4


@pytest.mark.parametrize("where", [0, 9])
def test_nonfinite_chunk_anywhere_leaves_everything_in_place(where):
    rng = np.random.default_rng(1)
    x = [rng.normal(size=10), rng.normal(size=(3, 4))]
    X = [da.from_array(a, chunks=3) for a in x]
    g = [rng.normal(size=10), rng.normal(size=(3, 4))]
    g[0][where] = np.nan  # one chunk of the first array: the second array must not move either
    G = [da.from_array(a, chunks=3) for a in g]
    state = adam_np.init(X)
    with pytest.raises(FloatingPointError, match="grads contain NaN or inf at step 1; nothing was updated"):
        adam_np.update(G, state, X, AdamConfig(nonfinite="raise"))
    X1, state1 = adam_np.update(G, state, X, AdamConfig(nonfinite="skip"))
    assert X1 is X and state1.v is state.v and state1.s is state.s
    assert (state1.step, state1.skipped) == (0, 1)
    X2, _ = adam_np.update(G, state, X, AdamConfig(nonfinite="propagate"))
    assert np.isnan(X2[0].compute()[where]) and np.all(np.isfinite(X2[1].compute()))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_propagate_applies_a_nonfinite_step():
    """The contrast for the test above: without the check the step is taken, NaN and all."""
    X = da.from_array(np.ones(4), chunks=2)
    G = da.from_array(np.array([1.0, np.inf, 1.0, 1.0]), chunks=2)
    X1, _ = adam_np.update(G, adam_np.init(X), X, AdamConfig(nonfinite="propagate"))
    assert not np.array_equal(X1.compute(), np.ones(4))


PATHS = {  # how Adam steps Dask arrays: a kernel task per chunk, or adam_np.update (configs no kernel runs)
    "numba": (dict(lr=0.01, backend="numba"), "numba"),
    "numpy": (dict(lr=0.01, eps_mode="hat", weight_decay=0.1, backend="numpy"), "numpy"),
    "update": (dict(config=variants.yogi(lr=0.01)), None),
}


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("nonfinite", ["propagate", "raise", "skip"])
def test_stateful_adam_on_the_cluster_equals_numpy(client, nonfinite, path):
    kwargs, backend = PATHS[path]
    if "config" in kwargs:
        kwargs = {"config": AdamConfig.from_dict({**kwargs["config"].to_dict(), "nonfinite": nonfinite})}
    else:
        kwargs = {**kwargs, "nonfinite": nonfinite}
    rng = np.random.default_rng(2)
    x = [rng.normal(size=(20, 7)).astype(np.float32), rng.normal(size=13).astype(np.float32)]
    grads = [[rng.normal(size=a.shape).astype(np.float32) for a in x] for _ in range(30)]
    opt = adam_np.Adam([da.from_array(a, chunks=5) for a in x], **kwargs)
    ref = adam_np.Adam([a.copy() for a in x], **{**kwargs, "backend": "numpy"} if "backend" in kwargs else kwargs)
    assert opt.backend == backend
    given = list(opt.params)
    for g in grads:
        opt.step([da.from_array(a, chunks=(4, 3) if a.ndim == 2 else 6) for a in g])  # other chunks: rechunked
        ref.step(g)
    assert opt.state.step == 30
    for got, want in zip([*opt.params, *opt.state.v, *opt.state.s], [*ref.params, *ref.state.v, *ref.state.s]):
        assert_bitwise(got.compute(), want)
    # The graph is one task per chunk after 30 steps (persisted): it does not grow with the steps.
    assert [len(p.__dask_graph__()) for p in opt.params] == [p.npartitions for p in opt.params] == [8, 3]
    # The arrays passed in are not changed: the optimizer holds the new ones.
    assert_bitwise(given[0].compute(), x[0])


def test_stateful_adam_nonfinite_on_the_cluster(client):
    X = [da.from_array(np.ones(6), chunks=2)]
    bad = [da.from_array(np.array([1.0, 1.0, 1.0, np.nan, 1.0, 1.0]), chunks=2)]
    opt = adam_np.Adam(X, lr=0.1)
    opt.step([da.ones(6, chunks=2)])
    params, state = opt.params, opt.state
    with pytest.raises(FloatingPointError, match="at step 2"):
        opt.step(bad)
    assert opt.params is params and opt.state is state
    skipping = adam_np.Adam(X, lr=0.1, nonfinite="skip")
    skipping.step(bad)
    assert skipping.params[0] is X[0] and (skipping.state.step, skipping.state.skipped) == (0, 1)


@pytest.mark.parametrize("path", sorted(PATHS))
def test_state_overflow_on_the_cluster_raises_and_changes_nothing(client, path):
    """Finite gradients whose g*g overflows float32: every Dask path raises under "raise" with nothing changed
    (the kernel task per chunk as update does), and "skip" skips the step."""
    kwargs, _ = PATHS[path]
    x = [da.from_array(np.ones(6, np.float32), chunks=2), da.from_array(np.ones(4, np.float32), chunks=2)]
    big = [da.ones(6, chunks=2, dtype=np.float32),
           da.from_array(np.array([1.0, 1e20, 1.0, 1.0], np.float32), chunks=2)]
    opt = adam_np.Adam(x, **kwargs)
    opt.step([da.ones(6, chunks=2, dtype=np.float32), da.ones(4, chunks=2, dtype=np.float32)])
    params, state = opt.params, opt.state
    with np.errstate(over="ignore"):
        with pytest.raises(FloatingPointError, match=r"step 2 would make state\.s\[1\] \(float32\) NaN or inf"):
            opt.step(big)
        assert opt.params is params and opt.state is state
        config = AdamConfig.from_dict({**opt.config.to_dict(), "nonfinite": "skip"})
        skipping = adam_np.Adam(x, config=config, backend=kwargs.get("backend", "auto"))
        skipping.step(big)
    assert skipping.params[1] is x[1] and (skipping.state.step, skipping.state.skipped) == (0, 1)


def test_bad_input_names_the_argument_and_changes_nothing(client):
    opt = adam_np.Adam([da.ones(6, chunks=2)], lr=0.1)
    params, state = opt.params, opt.state
    with pytest.raises(ValueError, match=r"grads\[0\]"):
        opt.step([da.ones(5, chunks=2)])
    with pytest.raises(TypeError, match="grads must be a list"):
        opt.step(da.ones(6, chunks=2))
    with pytest.raises(TypeError, match="grads holds numpy arrays but params holds dask arrays"):
        opt.step([np.ones(6)])
    assert opt.params is params and opt.state is state


def test_local_client_attaches_to_an_existing_scheduler(client):
    from adam_np.cluster import local_client

    with local_client(client.scheduler.address) as other:
        assert other.scheduler_info()["address"] == client.scheduler_info()["address"]
        assert len(other.scheduler_info()["workers"]) == 2


# -- History cuts on a shared, busy cluster (issue 23) ------------------------------------------------------------


def _occupy(client, worker, seconds):
    """Keep ``worker``'s only thread busy for ``seconds`` (someone else's task, as on a loaded machine): the tasks
    queued behind it are what the scheduler's work stealing moves to the idle worker."""
    import time

    return client.submit(time.sleep, seconds, workers=[worker], allow_other_workers=False, pure=False)


def _holding_most(client, arrays):
    """The worker that holds most chunks of ``arrays`` (persisted)."""
    from collections import Counter

    return Counter(w for a in arrays for ws in client.who_has(a).values() for w in ws).most_common(1)[0][0]


def test_history_cut_while_a_worker_is_busy(client):
    """The re-keying tasks of a cut wait behind the busy worker's task; stolen by the idle worker, which does not
    hold the chunks, they fetch them instead of failing as if a worker had been lost."""
    from adam_np._dask import cut_history
    from adam_np.core._xp import persist

    (x,) = persist([da.from_array(np.arange(40.0), chunks=2) + 1])
    blocker = _occupy(client, _holding_most(client, [x]), 2.0)
    [(y,)] = cut_history([[x]])
    assert_bitwise(y.compute(), np.arange(40.0) + 1)
    assert len(y.__dask_graph__()) == 20
    blocker.cancel()


def test_history_cut_keys_are_the_cuts_own(client):
    """Equal inputs give equal keys; the keys a cut re-keys to are new each time, so another array's history that
    the scheduler still keeps (with its worker restrictions) never stands in for this cut's tasks."""
    from adam_np._dask import cut_history
    from adam_np.core._xp import persist

    w1, w2 = sorted(client.scheduler_info()["workers"])
    a = client.persist(da.from_array(np.arange(8.0), chunks=2) + 1, workers=[w1])
    [(a_cut,)] = cut_history([persist([a])])
    (a_next,) = persist([a_cut * 2])  # a's history: its next step depends on the cut keys
    b = client.persist(da.from_array(np.arange(8.0), chunks=2) + 1, workers=[w2])  # same keys as a, other worker
    assert b.name == a.name
    [(b_cut,)] = cut_history([persist([b])])
    assert b_cut.name != a_cut.name
    assert_bitwise(b_cut.compute(), np.arange(8.0) + 1)
    assert_bitwise(a_next.compute(), 2 * (np.arange(8.0) + 1))


def test_a_chunk_gone_after_a_cut_names_why(client):
    """Released while its worker is still there, or lost with a worker that left: the error says which."""
    from adam_np._dask import _own_chunk

    live = sorted(client.scheduler_info()["workers"])[0]
    released = client.submit(_own_chunk, ("adam_np-absent", 0), [live], pure=False)
    with pytest.raises(RuntimeError, match="is no longer on any worker: it was released \\(no worker was lost") as err:
        released.result()
    assert "left the cluster" not in str(err.value)
    gone = "tcp://192.0.2.1:1"  # never a worker of this cluster
    lost = client.submit(_own_chunk, ("adam_np-absent", 1), [gone], pure=False)
    with pytest.raises(RuntimeError, match=f"no longer on any worker: the worker that held it \\({gone}\\) left the "
                                           "cluster after the task history was cut"):
        lost.result()


@pytest.mark.slow
@pytest.mark.parametrize("collect", [False, True], ids=["refcounts", "gc-between-steps"])
@pytest.mark.parametrize("path", ["update", "numpy"])
def test_two_optimizers_with_equal_inputs_share_a_busy_cluster(client, monkeypatch, path, collect):
    """Two optimizers given equal arrays and gradients, stepped in turn (the first one step ahead, so its history
    holds the keys the second reaches next) on one client past 3 history cuts, one worker busy at each cut; then
    the first is deleted mid-run: the second still ends bit for bit where NumPy does."""
    import gc

    import adam_np.optimizer

    monkeypatch.setattr(adam_np.optimizer, "LINEAGE_STEPS", 4)  # cuts at steps 4, 8, 12, 16
    kwargs = PATHS[path][0]
    rng = np.random.default_rng(2)
    x = [rng.normal(size=(20, 7)).astype(np.float32), rng.normal(size=13).astype(np.float32)]
    grads = [[rng.normal(size=a.shape).astype(np.float32) for a in x] for _ in range(18)]

    def lazy(arrays):
        return [da.from_array(a, chunks=5) for a in arrays]

    first, second = adam_np.Adam(lazy(x), **kwargs), adam_np.Adam(lazy(x), **kwargs)
    ref = adam_np.Adam([a.copy() for a in x], **kwargs)
    assert first.backend == second.backend == PATHS[path][1]
    first.step(lazy(grads[0]))
    for t, g in enumerate(grads, 1):
        if first is not None:
            first.step(lazy(grads[t]))
        blocker = _occupy(client, _holding_most(client, second.params), 0.5) if t % 4 == 0 else None
        second.step(lazy(g))
        ref.step(g)
        if blocker is not None:
            blocker.cancel()
        if t == 13:  # past 3 cuts: the first optimizer goes, its keys released
            first = None
        if collect:
            gc.collect()
    assert first is None and second.state.step == 18
    for got, want in zip([*second.params, *second.state.v, *second.state.s], [*ref.params, *ref.state.v, *ref.state.s]):
        assert_bitwise(got.compute(), want)
