"""Checkpoints: round trip, bitwise resume, corrupt/truncated/wrong-version/mismatched files, SIGKILL."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from adam_np import Adam, AdamState, checkpoint, variants
from adam_np.checkpoint import CheckpointError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the writer script
import _checkpoint_writer as writer

KILL_COUNT = int(os.environ.get("ADAM_NP_KILL_COUNT", "100"))


def _grads(rng, params):
    return [rng.standard_normal(p.shape) for p in params]


def _trained(steps=5, seed=0, **kw):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal((4, 3)), rng.standard_normal(3)]
    opt = Adam(params, lr=0.05, **kw)
    for _ in range(steps):
        opt.step(_grads(rng, params))
    return opt, params, rng


def _snapshot(opt):
    st = opt.state
    arrays = [*opt.params, *st.v, *st.s, *(st.master or [])]
    return (st.step, st.skipped, opt.config, [a.tobytes() for a in map(np.asarray, arrays)])


def test_round_trip_and_bitwise_resume(tmp_path):
    path = tmp_path / "run.npz"
    opt, params, rng = _trained(steps=7)
    checkpoint.save(path, opt, rng=rng, extra={"epoch": 1, "batch": 3, "loss": [0.1, 1 / 3, 2.0**-60]})
    # The uninterrupted run goes on for 5 more steps.
    for _ in range(5):
        opt.step(_grads(rng, params))
    # A fresh process (here: fresh objects) resumes from the file.
    params2 = [np.zeros((4, 3)), np.zeros(3)]
    opt2, rng2 = Adam(params2, lr=0.05), np.random.default_rng(999)
    ck = checkpoint.load(path, opt2, rng=rng2)
    assert ck.step == 7 and ck.extra == {"epoch": 1, "batch": 3, "loss": [0.1, 1 / 3, 2.0**-60]}
    for _ in range(5):
        opt2.step(_grads(rng2, params2))
    assert _snapshot(opt2) == _snapshot(opt)
    assert not [p for p in os.listdir(tmp_path) if p != "run.npz"]  # no temp file left behind


def test_adam_save_load_methods_and_master_copy(tmp_path):
    path = tmp_path / "half.npz"
    opt, _, _ = _trained(steps=0)
    half = [np.linspace(-1, 1, 6, dtype=np.float16)]
    opt = Adam(half, lr=0.01)
    opt.step([np.ones(6, dtype=np.float16)])
    opt.save(path)
    other = Adam([np.zeros(6, dtype=np.float16)], lr=0.01)
    other.load(path)
    assert other.state.master is not None and other.state.master[0].dtype == np.float32
    assert _snapshot(other) == _snapshot(opt)


def test_torch_params_round_trip(tmp_path):
    path = tmp_path / "t.npz"
    w = torch.linspace(0, 1, 5, dtype=torch.float32)
    opt = Adam([w], lr=0.1)
    opt.step([torch.ones(5)])
    checkpoint.save(path, opt)
    w2 = torch.zeros(5)
    opt2 = Adam([w2], lr=0.1)
    checkpoint.load(path, opt2)
    assert torch.equal(w2, w) and torch.equal(opt2.state.s[0], opt.state.s[0]) and opt2.state.step == 1


def test_lr_schedule_is_kept_by_the_loader(tmp_path):
    path = tmp_path / "s.npz"
    opt = Adam([np.ones(2)], lr=lambda t: 0.1 / t)
    opt.step([np.ones(2)])
    checkpoint.save(path, opt)
    assert checkpoint.read(path).config["lr"] is None
    with pytest.raises(CheckpointError, match="lr schedule"):
        checkpoint.load(path, Adam([np.ones(2)], lr=0.1))
    other = Adam([np.ones(2)], lr=lambda t: 0.2 / t)
    checkpoint.load(path, other)
    assert other.config.lr_at(2) == 0.1 and other.state.step == 1


def _assert_nothing_loaded(path, match):
    params = [np.full((4, 3), 7.0), np.full(3, 7.0)]
    opt = Adam(params, lr=0.05)
    rng = np.random.default_rng(5)
    before, rng_before = _snapshot(opt), rng.bit_generator.state
    with pytest.raises(CheckpointError, match=match):
        checkpoint.load(path, opt, rng=rng)
    assert _snapshot(opt) == before and rng.bit_generator.state == rng_before


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "c.npz"
    opt, _, rng = _trained()
    checkpoint.save(path, opt, rng=rng, extra={"epoch": 2})
    return path


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated(saved, fraction):
    data = saved.read_bytes()
    saved.write_bytes(data[: int(len(data) * fraction)])
    _assert_nothing_loaded(saved, "not a readable .npz file")


def test_corrupt_byte(saved):
    with np.load(saved) as z:
        raw = z["v/0"].tobytes()
    data = bytearray(saved.read_bytes())
    at = data.find(raw)
    assert at > 0
    data[at + len(raw) // 2] ^= 0xFF  # inside the data of one array (the zip stays readable)
    saved.write_bytes(bytes(data))
    _assert_nothing_loaded(saved, "corrupt")


def test_checksum_catches_consistent_zip_with_changed_array(saved):
    with np.load(saved) as z:
        members = {k: z[k] for k in z.files}
    members["v/0"] = members["v/0"].copy()
    members["v/0"][0, 0] += 1e-12  # a valid .npz, but not what was checksummed
    np.savez(saved, **members)
    _assert_nothing_loaded(saved, "fails its sha256 check")


def test_wrong_version(saved):
    with np.load(saved) as z:
        members = {k: z[k] for k in z.files if k not in ("meta", "sha256")}
        meta = json.loads(z["meta"].tobytes())
    meta["version"] = checkpoint.FORMAT_VERSION + 1
    checkpoint.write_atomic(str(saved), members, meta)  # correctly checksummed, other version
    _assert_nothing_loaded(saved, "version 2, expected 'adam_np.checkpoint' version 1")


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, a=np.ones(2))
    _assert_nothing_loaded(path, "not an adam_np checkpoint")
    _assert_nothing_loaded(tmp_path / "missing.npz", "does not exist")
    np.save(tmp_path / "arr.npy", np.ones(2))
    _assert_nothing_loaded(tmp_path / "arr.npy", "not an .npz checkpoint")


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ([np.zeros((4, 3))], "holds 2 parameters, the optimizer has 1"),
        ([np.zeros((4, 3)), np.zeros(4)], r"param 1 has shape \(3,\)"),
        ([np.zeros((4, 3)), np.zeros(3, dtype=np.float32)], "param 1 has dtype float64"),
    ],
)
def test_mismatched_optimizer(saved, params, match):
    opt = Adam(params)
    before = _snapshot(opt)
    with pytest.raises(CheckpointError, match=match):
        checkpoint.load(saved, opt)
    assert _snapshot(opt) == before


def test_rng_mismatch(saved, tmp_path):
    opt = Adam([np.zeros((4, 3)), np.zeros(3)])
    rng = np.random.Generator(np.random.Philox(1))
    before = (_snapshot(opt), str(rng.bit_generator.state))
    with pytest.raises(CheckpointError, match="rng state does not fit Philox"):
        checkpoint.load(saved, opt, rng=rng)
    assert (_snapshot(opt), str(rng.bit_generator.state)) == before
    path = tmp_path / "norng.npz"
    checkpoint.save(path, opt)
    with pytest.raises(CheckpointError, match="holds no rng state"):
        checkpoint.load(path, opt, rng=np.random.default_rng())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"extra": {"a": np.float32(1)}}, TypeError, "extra must be JSON-serializable"),
        ({"extra": {1: 2}}, TypeError, "extra must be a dict with str keys"),
        ({"rng": np.random.RandomState(0)}, TypeError, "rng must be a numpy.random.Generator"),
    ],
)
def test_bad_save_arguments_write_nothing(saved, kwargs, error, match):
    opt, _, _ = _trained(seed=1)
    before = saved.read_bytes()
    with pytest.raises(error, match=match):
        checkpoint.save(saved, opt, **kwargs)
    assert saved.read_bytes() == before
    with pytest.raises(TypeError, match="optimizer must be an adam_np.Adam"):
        checkpoint.save(saved, object())


def _check_checkpoint(path, allowed):
    """The file loads, fully, as exactly one of the checkpoints numbered ``allowed``."""
    params = [np.zeros(shape) for shape in writer.SHAPES]
    opt, rng = Adam(params, lr=0.01), np.random.default_rng()
    ck = checkpoint.load(path, opt, rng=rng)
    i = ck.extra["i"]
    assert i in allowed, (i, allowed)
    exp_params, exp_v, exp_s = writer.expected(i)
    assert opt.state.step == i
    for got, exp in zip([*params, *opt.state.v, *opt.state.s], [*exp_params, *exp_v, *exp_s]):
        assert got.tobytes() == exp.tobytes()
    assert rng.bit_generator.state == np.random.default_rng(i).bit_generator.state
    return i


@pytest.mark.slow  # subprocesses
def test_sigkill_leaves_old_or_new_checkpoint(tmp_path):
    """Kill a writer with SIGKILL at random moments; the file is always exactly the old or the new one."""
    path = tmp_path / "ck.npz"
    params, v, s = writer.expected(0)
    opt = Adam([p.copy() for p in params], lr=0.01)
    opt.state = AdamState(0, v, s, 0)
    checkpoint.save(path, opt, rng=np.random.default_rng(0), extra={"i": 0})
    current, mid_write, progressed, seen_leftovers = 0, 0, 0, []
    rnd = random.Random(12345)
    script = Path(writer.__file__)
    for _ in range(KILL_COUNT):
        proc = subprocess.Popen([sys.executable, str(script), str(path), str(current)], stdout=subprocess.PIPE)
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(rnd.uniform(0.0, 0.03))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reported = [int(line) for line in proc.stdout.read().split()]
        proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        last_done = reported[-1] if reported else current
        i = _check_checkpoint(path, {last_done, last_done + 1})
        leftovers = [p for p in os.listdir(tmp_path) if p != "ck.npz"]
        assert all(p.startswith(".ck.npz.") and p.endswith(".tmp") for p in leftovers), leftovers
        # each save first removes the temp files of killed writers: at most the last kill's is left
        assert len(leftovers) <= 1, leftovers
        mid_write += leftovers != seen_leftovers and bool(leftovers)
        seen_leftovers = leftovers
        progressed += i > current
        current = i
    print(f"\nSIGKILL test: {KILL_COUNT} kills, {mid_write} during a write (temp file left), "
          f"{progressed} after at least one new checkpoint; every file loaded as the old or the new one")
    assert progressed > 0 and mid_write > 0  # the kills really hit both idle and writing moments
    checkpoint.save(path, opt, rng=np.random.default_rng(0), extra={"i": 0})
    assert os.listdir(tmp_path) == ["ck.npz"]  # the last killed writer's temp file is gone too


def test_a_save_removes_only_stale_temp_files_of_its_own_naming(tmp_path):
    """Killed saves' temp files go on the next save; a live writer's, other names' and users' files stay."""
    path = tmp_path / "ck.npz"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = checkpoint._writer_tag().split("-")[0]
    names = {
        "killed": f".ck.npz.{host}-{int(dead.stdout)}.abcdefgh.tmp",  # this host, its process gone
        "old": ".ck.npz.0123abcd.tmp",  # the naming before writer tags, two hours old
        "live": f".ck.npz.{checkpoint._writer_tag()}.abcdefgh.tmp",  # a concurrent save of this process
        "other host": ".ck.npz.00000000-1.abcdefgh.tmp",  # another host's writer, recent
        "fresh old-style": ".ck.npz.9876zyxw.tmp",
        "user": ".ck.npz.notes.tmp",
        "other file": f".other.npz.{host}-{int(dead.stdout)}.abcdefgh.tmp",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"partial")
    os.utime(tmp_path / names["old"], (time.time() - 7200,) * 2)
    os.utime(tmp_path / names["user"], (time.time() - 7200,) * 2)
    Adam([np.ones(3)]).save(path)
    left = set(os.listdir(tmp_path))
    assert names["killed"] not in left and names["old"] not in left
    assert {names[k] for k in ("live", "other host", "fresh old-style", "user", "other file")} <= left
    assert len(left) == 6


@pytest.mark.parametrize("variant", [dict(variant="amsgrad"), dict(variant=variants.NAdam(mu_product_dtype="float32"))])
def test_variant_state_survives_state_dict_and_checkpoint(tmp_path, variant):
    # AMSGrad's s_max and NAdam's mu_product are state too: a resumed run must continue bit for bit.
    rng = np.random.default_rng(5)
    grads = [[rng.normal(size=4) * 10.0 ** rng.uniform(-2, 2)] for _ in range(30)]
    ref = [np.ones(4)]
    opt = Adam(ref, lr=0.01, **variant)
    for g in grads:
        opt.step(g)
    for how in ("state_dict", "checkpoint"):
        w = [np.ones(4)]
        first = Adam(w, lr=0.01, **variant)
        for g in grads[:12]:
            first.step(g)
        resumed_params = [np.zeros(4)]
        resumed = Adam(resumed_params, lr=0.01, **variant)
        if how == "state_dict":
            resumed_params[0][...] = w[0]
            resumed.load_state_dict(first.state_dict())
        else:
            first.save(tmp_path / "ck.npz")
            resumed.load(tmp_path / "ck.npz")
        for g in grads[12:]:
            resumed.step(g)
        assert resumed_params[0].tobytes() == ref[0].tobytes(), how
        assert resumed.state.mu_product == opt.state.mu_product


def _craft_checkpoint(path, change):
    """Rewrite the checkpoint at ``path`` with ``change(members, meta)`` applied and a valid checksum."""
    members, meta = checkpoint.read_verified(path, "adam_np.checkpoint", checkpoint.FORMAT_VERSION)
    change(members, meta)
    out = path.with_name("crafted.npz")
    checkpoint.write_atomic(out, members, meta)
    return out


def _negative(name):
    return lambda members, meta: members.__setitem__(name, -members[name] - 1.0)


def _nan(name):
    def change(members, meta):
        a = members[name].copy()
        a.flat[0] = np.nan
        members[name] = a
    return change


@pytest.mark.parametrize("change, match", [
    (lambda members, meta: meta.__setitem__("extra", [1, 2]), r"extra of type list, expected a dict"),
    (lambda members, meta: meta.__setitem__("extra", None), r"extra of type NoneType, expected a dict"),
    (_negative("s/0"), r"s\[0\] has negative or NaN entries"),
    (_nan("s/1"), r"s\[1\] has negative or NaN entries"),
    (_negative("s_max/0"), r"s_max\[0\] has negative or NaN entries"),
    (_nan("s_max/1"), r"s_max\[1\] has negative or NaN entries"),
])
def test_consistent_checksum_but_bad_content_is_refused(tmp_path, change, match):
    opt, params, rng = _trained(steps=3, variant="amsgrad")
    path = tmp_path / "c.npz"
    checkpoint.save(path, opt, rng=rng, extra={"epoch": 0})
    checkpoint.read(path)
    crafted = _craft_checkpoint(path, change)
    with pytest.raises(CheckpointError, match=match):
        checkpoint.read(crafted)
    target = Adam([np.zeros((4, 3)), np.zeros(3)], lr=0.05, variant="amsgrad")
    before = _snapshot(target)
    with pytest.raises(CheckpointError, match=match):
        checkpoint.load(crafted, target)
    assert _snapshot(target) == before


def test_bfloat16_params_cannot_be_saved_and_nothing_is_written(tmp_path):
    opt = Adam([torch.ones(3, dtype=torch.bfloat16)], lr=0.1)
    path = tmp_path / "bf16.npz"
    with pytest.raises(TypeError, match=r"param\[0\] has dtype torch.bfloat16, which NumPy \(and so a .npz file\)"):
        checkpoint.save(path, opt)
    assert not path.exists() and not list(tmp_path.iterdir())


def _rewrite_meta(path, edit):
    """Edit a checkpoint's metadata by hand and recompute its sha256, as a determined user could."""
    from adam_np.checkpoint import read_verified, write_atomic

    members, meta = read_verified(path, *_format_of(path))
    edit(meta)
    write_atomic(path, members, meta)


def _format_of(path):
    z = np.load(path)
    meta = json.loads(z["meta"].tobytes())
    return meta["format"], meta["version"]


def _set(dotted, value):
    def edit(meta):
        *keys, last = dotted.split(".")
        for key in keys:
            meta = meta[key]
        meta[last] = value
    return edit


@pytest.mark.parametrize("dotted, value, match", [
    ("n_params", 10**30, "has n_params 10{30}, but holds 4 arrays"),  # was a MemoryError
    ("rng.state", {}, "rng state does not fit PCG64"),  # was a KeyError
    ("rng.uinteger", -1, "rng state does not fit PCG64"),  # was an OverflowError
    ("rng.has_uint32", 10**30, "rng state does not fit PCG64"),
])
def test_a_hand_edited_checkpoint_with_a_recomputed_checksum_is_a_checkpoint_error(tmp_path, dotted, value, match):
    w = np.array([1.0, 2.0])
    opt = Adam([w], config=variants.amsgrad(lr=0.1))
    opt.step([w.copy()])
    path = tmp_path / "ck.npz"
    checkpoint.save(path, opt, rng=np.random.default_rng(0))
    _rewrite_meta(path, _set(dotted, value))
    w2 = np.zeros(2)
    victim, rng = Adam([w2]), np.random.default_rng(5)
    before = rng.bit_generator.state
    with pytest.raises(CheckpointError, match=match):
        checkpoint.load(path, victim, rng=rng)
    assert victim.state.step == 0 and not w2.any() and rng.bit_generator.state == before


@pytest.mark.parametrize("dotted, value, match", [
    ("extra.run", None, "has a run identity of type NoneType"),  # was an AttributeError
    ("config", None, "holds no Adam state, this run's 'adam' needs one"),
    ("rng.uinteger", -1, "rng state does not fit PCG64"),  # was an OverflowError
    ("rng.has_uint32", 10**30, "rng state does not fit PCG64"),
])
def test_a_hand_edited_run_checkpoint_is_a_checkpoint_error(tmp_path, dotted, value, match):
    from adam_np.book.chapter7 import AdamRule
    from adam_np.book.data import make_synthetic
    from adam_np.book.resume import load_run, save_run
    from adam_np.book.train import init_train, run_train

    X, y, _, _ = make_synthetic(n=50, d=2)
    rule, path, settings = AdamRule(), tmp_path / "run.npz", {"seed": 1, "epochs": 2, "batch_size": 10}
    part = run_train(init_train(rule, X, y, seed=1), rule, X, y, num_epochs=2,
                     on_step=lambda s: s.examples_seen == 70)
    save_run(path, part, rule, X, y, settings=settings)
    _rewrite_meta(path, _set(dotted, value))
    with pytest.raises(CheckpointError, match=match):
        load_run(path, rule, X, y, settings=settings)
