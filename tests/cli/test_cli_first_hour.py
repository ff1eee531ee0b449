"""A new user's first hour with ``adam-np``: reproducible defaults, one divergence rule for every optimizer,
outputs that never overwrite inputs or lose a result, Ctrl-C, and one clear line (no traceback) for bad input."""

from __future__ import annotations

import doctest
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from adam_np.book.chapter7 import OPTIMIZERS, make_optimizer
from adam_np.book.data import make_synthetic
from adam_np.book.train import train_ch7
from adam_np.cli import main

from conftest import run_cli

REPO = Path(__file__).resolve().parents[2]
LINE = re.compile(r"loss: (\d+\.\d{6}), \d+\.\d{6} sec per epoch\n")


_cli = run_cli


def _strict_json(text: str) -> dict:
    """json.loads that refuses NaN/Infinity, as strict JSON readers do."""
    def refuse(name):
        raise ValueError(f"invalid JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


# --- item 12: reproducible by default ---------------------------------------------------------------

def test_default_seed_is_zero_and_recorded(capsys):
    runs = [_cli(capsys, "train", "--quiet", "--json") for _ in range(2)]
    assert all(code == 0 for code, _, _ in runs)
    first, second = (_strict_json(out) for _, out, _ in runs)
    assert first["seed"] == 0 and first["w"] == second["w"] and first["losses"] == second["losses"]
    code, out, _ = _cli(capsys, "train", "--quiet", "--json", "--seed", "random")
    fresh = _strict_json(out)
    assert code == 0 and isinstance(fresh["seed"], int) and fresh["seed"] >= 0
    code, out, _ = _cli(capsys, "train", "--quiet", "--json", "--seed", str(fresh["seed"]))
    assert _strict_json(out)["w"] == fresh["w"]  # the recorded seed repeats the run


def test_readme_shows_what_the_commands_print(capsys):
    """README's `adam-np train` lines show exactly the loss the commands print (the time varies)."""
    readme = (REPO / "README.md").read_text()
    for argv in (["train"], ["train", "--data", "airfoil"]):
        shown = re.search(r"^\$ adam-np " + re.escape(" ".join(argv)) + r"\s+#.*\n(loss: .*)$", readme, re.M)
        assert shown, f"README lost its `adam-np {' '.join(argv)}` example"
        code, out, _ = _cli(capsys, *argv, "--quiet")
        assert code == 0 and LINE.fullmatch(out)
        assert LINE.match(shown.group(1) + "\n").group(1) == LINE.match(out).group(1)


def test_readme_doctests_hold_without_the_number_flag():
    """README's outputs are what Python prints, not rounded versions that only pytest's NUMBER flag accepts."""
    parser = doctest.DocTestParser()
    test = parser.get_doctest((REPO / "README.md").read_text(), {}, "README.md", str(REPO / "README.md"), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    old = os.getcwd()
    try:
        os.chdir(REPO)
        result = runner.run(test, out=lambda s: None)
    finally:
        os.chdir(old)
    assert result.failed == 0 and result.attempted > 10


# --- item 6: one divergence rule for every optimizer ---------------------------------------------------

@pytest.mark.parametrize("optimizer", ["adam", "sgd", "momentum", "rmsprop"])
def test_diverging_runs_exit_1_with_valid_json(capsys, optimizer):
    lr = "1e30" if optimizer == "adam" else "1e6"
    code, out, err = _cli(capsys, "train", "--quiet", "--optimizer", optimizer, "--lr", lr)
    assert code == 1 and out == "" and "Traceback" not in err
    assert re.fullmatch(r"adam-np train: training diverged after \d+ steps \(.+\); try a smaller --lr\n", err), err
    code, out, err = _cli(capsys, "train", "--quiet", "--optimizer", optimizer, "--lr", lr, "--json")
    record = _strict_json(out)  # never NaN/Infinity
    assert code == 1 and record["diverged"] and record["optimizer"] == optimizer


def test_converging_runs_say_not_diverged(capsys):
    code, out, _ = _cli(capsys, "train", "--quiet", "--json", "--optimizer", "adagrad")
    assert code == 0 and _strict_json(out)["diverged"] is None


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_nan_data_are_refused_for_every_rule(name):
    X, y, _, _ = make_synthetic(n=40, d=3)
    X = np.array(X)
    X[17, 2] = np.nan
    with pytest.raises(ValueError, match=r"1 rows hold NaN or inf, e.g. rows \[17\]"):
        train_ch7(make_optimizer(name), X, y, seed=0)


# --- items 3, 11, 14: outputs -------------------------------------------------------------------------

def _npy_data(tmp_path):
    np.save(tmp_path / "X.npy", np.ones((20, 2)))
    np.save(tmp_path / "y.npy", np.ones(20))
    return tmp_path / "X.npy", tmp_path / "y.npy"


@pytest.mark.parametrize("target", ["labels", "data", "link to labels", "inside store"])
def test_checkpoint_never_overwrites_an_input(tmp_path, capsys, target):
    X, y = _npy_data(tmp_path)
    before = {p: p.read_bytes() for p in (X, y)}
    data, labels = str(X), str(y)
    if target == "labels":
        ck = y
    elif target == "data":
        ck = X
    elif target == "link to labels":
        ck = tmp_path / "ck.npz"
        ck.symlink_to(y)
    else:
        store = tmp_path / "d.zarr"
        store.mkdir()
        data, labels, ck = str(store), None, store / "ck.npz"
    argv = ["train", "--data", data, "--checkpoint", str(ck), "--quiet"] + (["--labels", labels] if labels else [])
    code, out, err = _cli(capsys, *argv)
    assert code == 2 and out == "" and "usage:" not in err and "Traceback" not in err
    assert "argument --checkpoint: " in err and "refusing to overwrite the data" in err, err
    assert all(p.read_bytes() == b for p, b in before.items())


def test_plot_onto_the_airfoil_file_is_refused(tmp_path, capsys):
    data = tmp_path / "air.png"
    data.write_bytes(b"not really")
    code, _, err = _cli(capsys, "train", "--data", "airfoil", "--data-path", str(data), "--plot", str(data))
    assert code == 2 and "argument --plot: " in err and "--data-path" in err
    assert data.read_bytes() == b"not really"


def test_result_is_printed_before_a_failing_plot(tmp_path, capsys, monkeypatch):
    from adam_np.book import plot

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(plot, "plot_loss", full_disk)
    code, out, err = _cli(capsys, "train", "--quiet", "--plot", str(tmp_path / "loss.png"))
    assert code == 1 and LINE.fullmatch(out), out  # the result is not lost
    assert err.startswith("adam-np train: error: argument --plot: could not write") and "No space" in err
    assert err.count("\n") == 1


def test_checkpoint_write_failure_is_one_line(tmp_path, capsys, monkeypatch):
    from adam_np.book import resume

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(resume, "save_run", full_disk)
    code, out, err = _cli(capsys, "train", "--quiet", "--checkpoint", str(tmp_path / "ck.npz"))
    assert code == 1 and "Traceback" not in err and err.count("\n") == 1
    assert LINE.fullmatch(out)  # the finished run's result is printed all the same
    assert "could not write the checkpoint" in err and "No space left" in err
    code, out, err = _cli(capsys, "train", "--quiet", "--checkpoint", str(tmp_path / "ck.npz"), "--max-steps", "3")
    assert code == 1 and out == "" and "could not write the checkpoint" in err and "--resume" not in err


@pytest.mark.parametrize("flag", ["--checkpoint", "--plot"])
def test_read_only_folder_is_refused_before_training(tmp_path, capsys, monkeypatch, flag):
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(tmp_path) else real_access(
        p, mode, **kw))  # as a non-root user sees a chmod 555 folder
    code, out, err = _cli(capsys, "train", "--quiet", flag, str(tmp_path / "out.png"))
    assert code == 2 and out == "" and f"argument {flag}: the folder" in err and "not writeable" in err


def test_batch_larger_than_the_data_in_memory(capsys):
    code, out, err = _cli(capsys, "train", "--batch-size", "1501")
    assert code == 2 and out == "" and "usage:" not in err
    assert "argument --batch-size: 1501 is larger than the data (1500 rows)" in err


def test_missing_optional_stack_names_the_extra(tmp_path, capsys, monkeypatch):
    X, y = _npy_data(tmp_path)
    monkeypatch.setitem(sys.modules, "zarr", None)  # as if `pip install -e .` without [dask]
    code, out, err = _cli(capsys, "train", "--data", str(X), "--labels", str(y), "--quiet")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert 'needs zarr: pip install "adam-np[dask]"' in err
    code, _, err = _cli(capsys, "make-data", "--rows", "10", "--features", "2", "--out", str(tmp_path / "n.zarr"))
    assert code == 2 and 'pip install "adam-np[dask]"' in err and not (tmp_path / "n.zarr").exists()


# --- item 14: cluster flags ---------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--scheduler", "garbage"], "argument --scheduler: expected a scheduler address"),
    (["--memory-limit", "lots"], "argument --memory-limit: expected auto, 0 or a size such as 2GiB"),
    (["--scheduler", "tcp://127.0.0.1:9", "--workers", "3"], "argument --workers: only for a local cluster"),
    (["--scheduler", "tcp://127.0.0.1:9", "--memory-limit", "1GiB"], "argument --memory-limit: only for a local"),
])
def test_cluster_flags_are_checked(tmp_path, capsys, argv, message):
    X, y = _npy_data(tmp_path)
    code, out, err = _cli(capsys, "train", "--data", str(X), "--labels", str(y), "--quiet", *argv)
    assert code == 2 and out == "" and message in err and "Traceback" not in err


def test_scheduler_that_is_not_dask_times_out_with_one_line(tmp_path, capsys, monkeypatch):
    """An HTTP-like port that accepts and never answers: bounded by the connect timeout, one line, exit 2."""
    from adam_np.cli import _common

    monkeypatch.setattr(_common, "CONNECT_TIMEOUT_S", 1)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held = []
    threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()
    X, y = _npy_data(tmp_path)
    start = time.monotonic()
    try:
        code, out, err = _cli(capsys, "train", "--data", str(X), "--labels", str(y), "--quiet", "--scheduler",
                              f"tcp://127.0.0.1:{server.getsockname()[1]}")
    finally:
        server.close()
    assert time.monotonic() - start < 30
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert "argument --scheduler: cannot use" in err and "no answer from a Dask scheduler within 1 s" in err


# --- items 14, 16: the other sub-commands ---------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["bench", "--sizes", "abc"], "argument --sizes: expected comma-separated integers"),
    (["bench", "--repeats", "0"], "argument --repeats: expected an integer >= 1"),
    (["bench", "--methods", "nope"], "argument --methods: expected comma-separated names among"),
    (["bench", "--dtypes", "float16"], "argument --dtypes: expected comma-separated dtypes"),
    (["crosscheck", "--seed", "-1"], "argument --seed: expected an integer >= 0"),
    (["crosscheck", "--steps", "0"], "argument --steps: expected an integer >= 1"),
    (["plot", "--data", "x.zarr"], "argument --data: expected synthetic or airfoil"),
])
def test_bad_flags_of_other_commands_name_the_flag(capsys, argv, message):
    code, _, err = _cli(capsys, *argv)
    assert code == 2 and message in err and "<lambda>" not in err


def test_bench_results_that_cannot_be_written(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, out, err = _cli(capsys, "bench", "--quick", "--results", str(tmp_path / "file" / "r"))
    assert code == 2 and out == "" and "argument --results: cannot write into" in err


def test_help_texts(capsys):
    for argv in (["train", "--help"], ["plot", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        text = capsys.readouterr().out
        assert "%%" not in text
        if argv[0] == "train":
            assert "'loss: %f, %f sec per epoch'" in text.replace("\n", " ").replace("  ", " ")
        else:
            assert "zarr" not in text.lower() and "--labels" not in text


def test_crosscheck_explains_its_columns(capsys):
    code, out, _ = _cli(capsys, "crosscheck", "--against", "torch", "--variant", "adam", "--steps", "20")
    assert code == 0 and "| pass |" in out
    assert "normwise rel = max|x - x_ref| / max|x_ref|" in out and "max ulp:" in out


# --- item 13: Ctrl-C ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_ctrl_c_saves_and_says_how_to_resume(tmp_path):
    ck = tmp_path / "ck.npz"
    argv = [sys.executable, "-m", "adam_np", "train", "--quiet", "--epochs", "100000", "--checkpoint", str(ck)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    time.sleep(4)  # imports and a few thousand steps
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert out == "" and "Traceback" not in err and err.count("\n") == 1, err
    assert re.fullmatch(rf"interrupted after \d+ steps \(epoch \d+, batch \d+\); continue with --resume {ck}\n", err)
    resumed = subprocess.run([*argv[:5], "--epochs", "100000", "--resume", str(ck), "--max-steps", "5"],
                             capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert resumed.returncode == 0 and "continue with --resume" in resumed.stderr, resumed.stderr


@pytest.mark.slow
def test_ctrl_c_before_training_is_one_line(tmp_path):
    """A Ctrl-C while the data load (here: while sleeping in a patched loader) gives one line and exit 130."""
    code = ("import time, adam_np.cli.train as t\n"
            "t.load = lambda args: time.sleep(30)\n"
            "import sys; from adam_np.cli import main; sys.exit(main(['train', '--quiet']))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err == "adam-np train: interrupted (Ctrl-C)\n", err
