"""Bitwise resume of a training run: library (every chapter-7 rule) and `adam-np train --resume`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from adam_np import variants
from adam_np.book.chapter7 import AdamRule, make_optimizer
from adam_np.book.data import make_synthetic
from adam_np.book.resume import load_run, save_run
from adam_np.book.train import init_train, run_train
from adam_np.checkpoint import CheckpointError

from conftest import REPO_ROOT

RULES = {
    "adam": lambda: AdamRule(),
    "adam-in-place": lambda: AdamRule(in_place=True),
    "amsgrad": lambda: AdamRule(config=variants.amsgrad(lr=0.01)),
    "nadam": lambda: AdamRule(config=variants.nadam(lr=0.01)),
    **{name: (lambda name=name: make_optimizer(name))
       for name in ("sgd", "momentum", "adagrad", "rmsprop", "adadelta")},
}


def same_run(a, b):
    assert a.losses == b.losses and a.epochs == b.epochs
    assert (a.epoch, a.batch, a.examples_seen) == (b.epoch, b.batch, b.examples_seen)
    for p, q in zip(a.params, b.params):
        assert np.asarray(p).tobytes() == np.asarray(q).tobytes()


@pytest.mark.parametrize("stop_at", [1, 7, 15, 16, 23])  # 8 batches per epoch: mid-epoch and at boundaries
@pytest.mark.parametrize("name", list(RULES))
def test_interrupted_run_resumes_bit_for_bit(tmp_path, name, stop_at):
    X, y, _, _ = make_synthetic(n=75, d=3, seed=2)
    rule = RULES[name]()
    full = run_train(init_train(rule, X, y, seed=4), rule, X, y, batch_size=10, num_epochs=3, eval_every=20)

    rule = RULES[name]()
    steps = []
    part = run_train(init_train(rule, X, y, seed=4), rule, X, y, batch_size=10, num_epochs=3, eval_every=20,
                     on_step=lambda s: steps.append(1) or len(steps) == stop_at)
    path = tmp_path / "run.npz"
    save_run(path, part, rule, X, y, settings={"batch_size": 10})
    fresh_rule = RULES[name]()
    resumed = load_run(path, fresh_rule, X, y, settings={"batch_size": 10})
    resumed = run_train(resumed, fresh_rule, X, y, batch_size=10, num_epochs=3, eval_every=20)
    same_run(resumed, full)


def test_resume_refuses_another_run(tmp_path):
    X, y, _, _ = make_synthetic(n=40, d=2, seed=0)
    rule = AdamRule()
    state = run_train(init_train(rule, X, y, seed=0), rule, X, y, num_epochs=1, on_step=lambda s: s.batch == 2)
    path = tmp_path / "run.npz"
    save_run(path, state, rule, X, y, settings={"batch_size": 10})
    with pytest.raises(CheckpointError, match=r"another run \(settings: saved \{'batch_size': 10\}"):
        load_run(path, rule, X, y, settings={"batch_size": 20})
    with pytest.raises(CheckpointError, match=r"another run \(optimizer: saved 'adam', now 'sgd'\)"):
        load_run(path, make_optimizer("sgd"), X, y, settings={"batch_size": 10})
    with pytest.raises(CheckpointError, match=r"another run \(hyperparams"):
        load_run(path, AdamRule(config=variants.adam(lr=0.5)), X, y, settings={"batch_size": 10})
    with pytest.raises(CheckpointError, match=r"another run \(the data differ\)"):
        load_run(path, rule, X + 1.0, y, settings={"batch_size": 10})
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:  # flip the last 8 bytes of a parameter's data (not unused header fields)
        info = z.getinfo("param/0.npy")
    local = info.header_offset
    start = local + 30 + int.from_bytes(data[local + 26 : local + 28], "little") + \
        int.from_bytes(data[local + 28 : local + 30], "little")
    end = start + info.compress_size
    data[end - 8 : end] = bytes(b ^ 0xFF for b in data[end - 8 : end])
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_run(path, rule, X, y, settings={"batch_size": 10})


def cli(*args, check=True):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-m", "adam_np", "train", "--quiet", *args], capture_output=True,
                          text=True, env=env, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.slow  # subprocesses
def test_cli_run_in_chunks_equals_uninterrupted_run(tmp_path):
    flags = ["--json", "--seed", "5", "--epochs", "3"]
    full = json.loads(cli(*flags).stdout)
    ck = str(tmp_path / "ck.npz")
    first = cli(*flags, "--checkpoint", ck, "--max-steps", "110")  # 150 steps per epoch: stops mid-epoch
    assert first.stdout == "" and "stopped after 110 steps (epoch 0, batch 110)" in first.stderr
    second = cli(*flags, "--resume", ck, "--max-steps", "200")
    assert "stopped after 200 steps (epoch 2, batch 10)" in second.stderr
    resumed = json.loads(cli(*flags, "--resume", ck, "--checkpoint-every", "7").stdout)
    for key in ("losses", "epochs", "w", "b", "examples_seen", "final_loss"):
        assert resumed[key] == full[key], key
    # --max-steps landing exactly on the run's last step finishes the run (no "stopped", the result printed).
    ck2 = str(tmp_path / "ck2.npz")
    cli(*flags, "--checkpoint", ck2, "--max-steps", "300")
    last = cli(*flags, "--resume", ck2, "--max-steps", "150")
    assert "stopped" not in last.stderr
    resumed = json.loads(last.stdout)
    for key in ("losses", "epochs", "w", "b", "examples_seen", "final_loss"):
        assert resumed[key] == full[key], key


@pytest.mark.slow  # subprocesses
def test_cli_resume_after_sigkill(tmp_path):
    # Kill a run that checkpoints every 3 steps at a random moment; resuming gives the uninterrupted result.
    flags = ["--json", "--seed", "6", "--epochs", "40", "--optimizer", "rmsprop"]
    full = json.loads(cli(*flags).stdout)
    rng = np.random.default_rng(0)
    for attempt in range(3):
        ck = tmp_path / f"ck{attempt}.npz"
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        proc = subprocess.Popen([sys.executable, "-m", "adam_np", "train", "--quiet", *flags, "--checkpoint", str(ck),
                                 "--checkpoint-every", "3"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not ck.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        resumed = json.loads(cli(*flags, "--resume", str(ck)).stdout)
        assert resumed["losses"] == full["losses"] and resumed["w"] == full["w"] and resumed["b"] == full["b"]


@pytest.mark.slow  # subprocesses
def test_cli_checkpoint_flags_are_checked(tmp_path):
    proc = cli("--checkpoint-every", "5", check=False)
    assert proc.returncode == 2 and "argument --checkpoint-every: needs --checkpoint PATH" in proc.stderr
    proc = cli("--max-steps", "0", "--checkpoint", str(tmp_path / "c.npz"), check=False)
    assert proc.returncode == 2 and "argument --max-steps" in proc.stderr
    ck = str(tmp_path / "c.npz")
    cli("--seed", "1", "--checkpoint", ck, "--max-steps", "3")
    proc = cli("--seed", "1", "--batch-size", "20", "--resume", ck, check=False)
    assert proc.returncode == 2 and "argument --resume" in proc.stderr and "another run (settings" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = cli("--resume", str(tmp_path / "missing.npz"), check=False)
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def _craft(path, change):
    """Rewrite the run at ``path`` with ``change(extra)`` applied to its run state and a valid checksum."""
    from adam_np import checkpoint

    ck = checkpoint.read(path)
    change(ck.extra)
    out = path.with_name("crafted.npz")
    checkpoint.write(out, ck)
    return out


def _set(**kw):
    return lambda extra: extra.update(kw)


def _pop(name):
    return lambda extra: extra.pop(name)


def _put(name, value):
    return lambda extra: extra.__setitem__(name, value)


SETTINGS = {"batch_size": 10, "epochs": 3}
CRAFTED = [  # the saved run stopped at epoch 1, batch 3 (8 batches of 10 out of 75 examples per epoch)
    (_pop("order"), SETTINGS, r"batch 3 of epoch 1 but lacks that epoch's 'order'"),
    (_set(batch=9, examples_seen=150), SETTINGS, r"batch 9, but an epoch has 8 batches"),
    (_set(examples_seen=106), SETTINGS, r"examples_seen 106, expected 105"),
    (_set(examples_seen=106), {}, None),  # without batch_size the position can only be bounded
    (_set(examples_seen=70), {}, r"examples_seen 70, inconsistent with epoch 1, batch 3"),
    (_set(epoch=4, batch=0, examples_seen=300), SETTINGS, r"epoch 4 \(batch 0\), beyond the run's 3 epochs"),
    (_put("junk", np.zeros(2)), SETTINGS, r"unexpected members \['junk'\]"),
    (lambda extra: extra.__setitem__("losses", extra["losses"][None, :]), SETTINGS,
     r"losses has shape \(1, \d+\).*1-D"),
    (lambda extra: extra.__setitem__("epochs", extra["epochs"][:-1]), SETTINGS, r"\d+ losses but \d+ epochs"),
    (_set(run=None), SETTINGS, r"has a run identity of type NoneType"),
    (_put("slot/velocity/0", np.zeros(2)), SETTINGS, r"unexpected members \['slot/velocity/0'\]"),
    (_pop("losses"), SETTINGS, r"lacks 'losses'"),
    (_set(train_seconds="x"), SETTINGS, r"train_seconds 'x', expected a finite number >= 0"),
    (_set(train_seconds=-1.0), SETTINGS, r"train_seconds -1.0"),
]


@pytest.mark.parametrize("change, settings, match", CRAFTED)
def test_inconsistent_crafted_runs_are_refused(tmp_path, change, settings, match):
    X, y, _, _ = make_synthetic(n=75, d=3, seed=2)
    rule = AdamRule()
    state = run_train(init_train(rule, X, y, seed=4), rule, X, y, batch_size=10, num_epochs=3,
                      on_step=lambda s: s.epoch == 1 and s.batch == 3)
    path = tmp_path / "run.npz"
    save_run(path, state, rule, X, y, settings=settings)
    assert load_run(path, AdamRule(), X, y, settings=settings).examples_seen == 105
    crafted = _craft(path, change)
    if match is None:
        load_run(crafted, AdamRule(), X, y, settings=settings)
        return
    with pytest.raises(CheckpointError, match=match):
        load_run(crafted, AdamRule(), X, y, settings=settings)


@pytest.mark.slow  # subprocesses
def test_cli_reports_a_crafted_run_without_traceback(tmp_path):
    ck = tmp_path / "c.npz"
    cli("--seed", "1", "--checkpoint", str(ck), "--max-steps", "3")
    crafted = _craft(ck, _set(train_seconds="x"))
    proc = cli("--seed", "1", "--resume", str(crafted), check=False)
    assert proc.returncode == 2 and "argument --resume:" in proc.stderr and "train_seconds 'x'" in proc.stderr
    assert "Traceback" not in proc.stderr
