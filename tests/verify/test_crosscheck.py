"""`adam-np crosscheck`: table, pass/fail, missing frameworks, exit status."""

from __future__ import annotations

import numpy as np
import pytest

from adam_np.cli import main
from adam_np.verify import crosscheck as cc
from adam_np.verify import presets


def test_cli_passes_and_prints_table(capsys):
    assert main(["crosscheck", "--against", "torch", "--variant", "adam", "radam", "--steps", "40",
                 "--windows", "2", "--size", "16"]) == 0
    out = capsys.readouterr().out
    assert "| torch | adam | 1-20 |" in out and "| torch | radam | 21-40 |" in out
    assert out.count("| pass |") == 4


def test_cli_all_runs_both_frameworks(capsys):
    assert main(["crosscheck", "--variant", "yogi", "adamax", "--steps", "20", "--windows", "1",
                 "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert "| optax | yogi |" in out and "| torch | adamax |" in out and "| optax | adamax |" in out
    assert "tol (float32)" in out


def test_missing_framework_is_reported_not_passed(monkeypatch, capsys):
    monkeypatch.setattr(cc, "_installed", lambda framework: framework != "optax")
    status = main(["crosscheck", "--variant", "adam", "--steps", "10", "--windows", "1"])
    captured = capsys.readouterr()
    assert status == 1
    assert "| optax | adam | - | - | - | - | 1e-12 | missing |" in captured.out
    assert "| torch | adam | 1-10 |" in captured.out
    assert "missing: optax adam is not installed" in captured.err


def test_missing_framework_without_the_requested_variant_is_not_reported(monkeypatch, capsys):
    monkeypatch.setattr(cc, "_installed", lambda framework: framework != "torch")
    status = main(["crosscheck", "--variant", "yogi", "--steps", "10", "--windows", "1"])
    captured = capsys.readouterr()
    assert status == 0, captured
    assert "torch" not in captured.out and "missing" not in captured.out + captured.err
    assert "| optax | yogi | 1-10 |" in captured.out
    rows = cc.crosscheck(against=["torch", "optax"], variants=["adam", "yogi"], steps=5, windows=1)
    assert [(r.framework, r.variant, r.status) for r in rows if r.framework == "torch"] == [
        ("torch", "adam", "missing")]  # only the variants torch has


def test_crosscheck_accepts_one_framework_as_a_string_and_rejects_empty_variants():
    rows = cc.crosscheck(against="torch", variants="adam", steps=5, windows=1)
    assert [(r.framework, r.variant, r.status) for r in rows] == [("torch", "adam", "pass")]
    with pytest.raises(ValueError, match=r"variants must name at least one variant \(None for all\), got \[\]"):
        cc.crosscheck(against=["torch"], variants=[], steps=5, windows=1)


def test_a_wrong_preset_fails(monkeypatch, capsys):
    monkeypatch.setattr(presets, "torch", lambda variant, **kw: presets.optax("amsgrad", **kw))
    status = main(["crosscheck", "--against", "torch", "--variant", "amsgrad", "--steps", "300", "--windows", "1"])
    captured = capsys.readouterr()
    assert status == 1
    assert "| FAIL |" in captured.out and "FAIL: torch amsgrad differs by" in captured.err


def test_nan_is_a_failure():
    traj = np.array([[1.0, np.nan]])
    rows = cc._compare("torch", "adam", traj, np.array([[1.0, 2.0]]), 1, 1e-12)
    assert rows[0].status == "FAIL"


def test_nothing_to_compare(capsys):
    assert main(["crosscheck", "--against", "torch", "--variant", "yogi", "--steps", "5"]) == 1
    assert "nothing was compared" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "argument --steps: expected an integer >= 1, got '0'"),
    (["--size", "-3"], "argument --size: expected an integer >= 1, got '-3'"),
])
def test_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(["crosscheck", *argv])
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_bad_choices_exit_2():
    with pytest.raises(SystemExit) as exc:
        main(["crosscheck", "--against", "keras"])
    assert exc.value.code == 2


def test_api_errors():
    with pytest.raises(ValueError, match="dtype must be one of"):
        cc.crosscheck(dtype="float16")
    with pytest.raises(ValueError, match="variant must be one of"):
        cc.crosscheck(variants=["sgd"])
    with pytest.raises(ValueError, match="against must name frameworks"):
        cc.crosscheck(against=["keras"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ulp_distance(dtype):
    one = dtype(1.0)
    up = np.nextafter(one, dtype(2.0))
    tiny = np.nextafter(dtype(0.0), dtype(1.0))
    a = np.array([one, -tiny, dtype(0.0), one], dtype=dtype)
    b = np.array([np.nextafter(up, dtype(2.0)), tiny, -dtype(0.0), one], dtype=dtype)
    assert cc.ulp_distance(a, b).tolist() == [2.0, 2.0, 0.0, 0.0]
