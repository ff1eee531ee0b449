"""``adam-np train`` / ``adam-np plot``: output format, JSON, progress, flag errors (exit 2, no traceback)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types

import pytest

from adam_np.cli import main
from adam_np.cli import train as _cli_train

from conftest import REPO_ROOT

LINE = re.compile(r"^loss: \d+\.\d{6}, \d+\.\d{6} sec per epoch\n$")


def test_default_run_prints_the_books_line(capsys):
    assert main(["train", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert LINE.match(out), out
    assert err == ""


def test_airfoil_json(capsys, airfoil_path):
    assert main(["train", "--data", "airfoil", "--data-path", str(airfoil_path), "--seed", "0", "--json",
                 "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["data"] == "airfoil" and out["optimizer"] == "adam" and out["seed"] == 0
    assert out["hyperparams"]["lr"] == 0.01 and out["hyperparams"]["eps"] == 1e-6
    assert len(out["losses"]) == 31 and 0.235 < out["final_loss"] < 0.255
    assert out["examples_seen"] == 3000 and len(out["w"]) == 5


def test_flags_reach_the_run(capsys):
    assert main(["train", "--optimizer", "rmsprop", "--lr", "0.02", "--eps", "1e-4", "--epochs", "3",
                 "--batch-size", "50", "--seed", "1", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["optimizer"] == "rmsprop" and out["hyperparams"] == {"lr": 0.02, "gamma": 0.9, "eps": 1e-4}
    assert out["num_epochs"] == 3 and out["examples_seen"] == 4500 and out["batch_size"] == 50


def test_seed_makes_runs_repeat(capsys):
    runs = []
    for _ in range(2):
        main(["train", "--seed", "4", "--json", "--quiet"])
        runs.append(json.loads(capsys.readouterr().out)["losses"])
    assert runs[0] == runs[1]


def test_airfoil_from_env(capsys, airfoil_path, monkeypatch):
    monkeypatch.setenv("ADAM_NP_AIRFOIL", str(airfoil_path))
    assert main(["train", "--data", "airfoil", "--quiet"]) == 0
    assert LINE.match(capsys.readouterr().out)


def test_plot_flag_writes_png(tmp_path, capsys):
    target = tmp_path / "loss.png"
    assert main(["train", "--quiet", "--plot", str(target)]) == 0
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_into_a_missing_folder_is_refused_before_training(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--quiet", "--plot", str(tmp_path / "sub" / "loss.png")])
    out, err = capsys.readouterr()
    assert info.value.code == 2 and out == "" and "usage:" not in err
    assert "argument --plot: the folder" in err and "does not exist" in err
    assert not (tmp_path / "sub").exists()


def test_progress_bar_on_stderr_for_long_runs(capsys, monkeypatch):
    monkeypatch.setattr(_cli_train, "PROGRESS_DELAY_S", 0.0)  # pretend the run is long
    main(["train"])
    out, err = capsys.readouterr()
    assert LINE.match(out) and "step" in err and "300" in err
    main(["train", "--quiet"])
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("argv, flag", [
    (["--lr", "-1"], "--lr"),
    (["--lr", "abc"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--eps", "-1e-3"], "--eps"),
    (["--batch-size", "0"], "--batch-size"),
    (["--epochs", "2.5"], "--epochs"),
    (["--optimizer", "lbfgs"], "--optimizer"),
    (["--optimizer", "adadelta", "--lr", "0.1"], "--lr"),
    (["--optimizer", "sgd", "--eps", "0.1"], "--eps"),
    (["--data-path", "x.dat"], "--data-path"),
    (["--data", "airfoil", "--data-path", "missing.dat"], "--data-path"),
    (["--backend", "tpu"], "--backend"),
    (["--seed", "-1"], "--seed"),
    (["--plot", "loss.jpg"], "--plot"),
])
def test_bad_flags_exit_2_naming_the_flag(argv, flag, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument {flag}" in err and "Traceback" not in err


def test_eps_zero_exits_2_naming_eps(capsys):
    # Before: --eps 0 trained, a zero gradient gave 0/0 and the run "diverged" with "try a smaller --lr".
    with pytest.raises(SystemExit) as info:
        main(["train", "--eps", "0"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "error: argument --eps: eps must be > 0, got 0.0" in err and "0/0" in err


def test_diverging_run_names_the_step(capsys):
    # Adam meets an infinite gradient: one line and exit 1, not a FloatingPointError traceback
    assert main(["train", "--quiet", "--lr", "1e30"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert re.fullmatch(r"adam-np train: training diverged after \d+ steps \(.*\); try a smaller --lr\n", err), err


@pytest.mark.parametrize("argv, flag, what", [
    (["train", "--checkpoint", "{tmp}/missing/c.npz"], "--checkpoint", "does not exist"),
    (["train", "--checkpoint", "{tmp}"], "--checkpoint", "is a directory"),
    (["train", "--checkpoint", "{file}/c.npz"], "--checkpoint", "not a directory"),
    (["train", "--resume", "{tmp}"], "--resume", "is a directory"),
    (["train", "--plot", "{file}/sub/loss.png"], "--plot", "not a directory"),
    (["train", "--plot", "{tmp}"], "--plot", ".png"),
    (["train", "--plot", "{tmp}/loss.jpg"], "--plot", ".png"),
    (["train", "--data", "airfoil", "--data-path", "{tmp}"], "--data-path", "is a directory"),
    (["plot", "--out", "{file}"], "--out", "not a directory"),
    (["plot", "--out", "{file}/figs"], "--out", "not a directory"),
])
def test_unusable_paths_are_refused_before_training(tmp_path, capsys, monkeypatch, argv, flag, what):
    from adam_np.book import train

    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking the paths")

    monkeypatch.setattr(train, "run_train", no_training)
    monkeypatch.setattr(train, "train_ch7", no_training)
    (tmp_path / "file.txt").write_text("x")
    argv = [a.format(tmp=tmp_path, file=tmp_path / "file.txt") for a in argv]
    with pytest.raises(SystemExit) as info:
        main([argv[0], "--quiet", *argv[1:]] if argv[0] == "train" else argv)
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert f"error: argument {flag}: " in err and what in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]  # nothing written


@pytest.mark.parametrize("why", ["not installed", "no device"])
def test_cupy_without_gpu_is_a_clear_error(capsys, monkeypatch, why):
    # Simulate a machine without a GPU (runs everywhere, GPU machines included).
    fake = None if why == "not installed" else types.SimpleNamespace(
        cuda=types.SimpleNamespace(is_available=lambda: False))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(SystemExit) as info:
        main(["train", "--backend", "cupy"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --backend: backend 'cupy' needs" in err and why.split()[-1] in err


def test_module_entry_point_offline():
    env = {k: v for k, v in os.environ.items() if k not in ("ADAM_NP_AIRFOIL",)}
    env["PYTHONPATH"] = str(REPO_ROOT)
    proc = subprocess.run([sys.executable, "-m", "adam_np", "train"], capture_output=True, text=True, env=env,
                          check=False,
                          cwd=REPO_ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert LINE.match(proc.stdout)


def test_plot_command(tmp_path, capsys):
    assert main(["plot", "--out", str(tmp_path), "--seed", "1"]) == 0
    out = capsys.readouterr().out.split()
    assert [os.path.basename(p) for p in out] == ["loss.png", "weights.png", "trajectories.png"]
    assert all((tmp_path / name).stat().st_size > 1000 for name in ("loss.png", "weights.png", "trajectories.png"))


def test_namespace_for():
    from adam_np.core._xp import namespace_for

    assert namespace_for("numpy").__name__ == "array_api_compat.numpy"
    with pytest.raises(ValueError, match="backend must be one of .*, got 'tpu'"):
        namespace_for("tpu")
