"""Smoke tests of the step benchmarks: ``adam-np bench`` (in the package) and ``benchmarks/bench_step.py`` with the
roofs (outside it): tiny sizes, tables and files of the right shape, ratios computed from the right rows; no
timing is asserted."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from adam_np import cli

ROOT = Path(__file__).resolve().parents[2]


def test_cli_bench_prints_and_writes_its_table(tmp_path, capsys):
    methods = "adam_np[numpy],numpy naive"
    assert cli.main(["bench", "--sizes", "6,100", "--dtypes", "float32,float64", "--repeats", "2", "--min-time",
                     "0.001", "--methods", methods, "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 2 * 2 * 2 and table[0].startswith("| method | n | dtype | time per step")
    assert (tmp_path / "bench_step.md").read_text().strip() == "\n".join(table)
    with open(tmp_path / "bench_step.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], r["n"], r["dtype"]) for r in rows] == [
        (m, n, d) for d in ("float32", "float64") for n in ("6", "100") for m in methods.split(",")]
    naive = {(r["n"], r["dtype"]): float(r["time_s"]) for r in rows if r["method"] == "numpy naive"}
    for r in rows:  # each ratio divides by the naive time of its own size and dtype; GB/s by the byte model
        t, n = float(r["time_s"]), int(r["n"])
        assert t > 0 and float(r["vs_naive"]) == pytest.approx(naive[r["n"], r["dtype"]] / t)
        assert float(r["gb_per_s"]) == pytest.approx((28 if r["dtype"] == "float32" else 56) * n / t / 1e9)


def test_cli_bench_steps_like_the_library():
    """Each timed method takes real Adam steps: after the same calls, the parameters agree with adam_np.update."""
    from adam_np import AdamConfig, init, update
    from adam_np.cli import bench

    rng = np.random.default_rng(1)
    g = rng.standard_normal(50)
    want, state = np.ones(50), init(np.ones(50))
    for _ in range(3):
        want, state = update(g, state, want, AdamConfig(lr=1e-3))
    for name in [m for m in ("adam_np[numpy]", "numpy naive", "torch fused") if bench.available(m)]:  # optax: a copy
        p = np.ones(50)
        step = bench._MAKERS[name](p, g)
        for _ in range(3):
            step()
        np.testing.assert_allclose(p, want, rtol=0, atol=1e-12, err_msg=name)


def test_roofs_move_the_bytes_and_keep_the_values():
    from benchmarks.roofs import PARALLEL_MIN, stream_roof, stream_roof_into

    for n in (5, PARALLEL_MIN):
        a = [np.arange(n, dtype=np.float32) + k for k in range(4)]
        stream_roof(*a)
        for k in (0, 2, 3):
            np.testing.assert_array_equal(a[k], np.arange(n, dtype=np.float32) + k)
    out = np.full((3, 4), np.nan)
    stream_roof_into(*(np.full(4, float(k)) for k in range(4)), out)
    np.testing.assert_array_equal(out, [[0.0] * 4, [2.0] * 4, [3.0] * 4])


@pytest.mark.slow
def test_bench_script_writes_table_csv_json_and_plot(tmp_path):
    methods = "adam_np[numpy],adam_np[numba],torch fused,optax jit donated,numpy naive,roof (stream)"
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_step.py"), "--sizes", "6,100", "--dtypes", "float32,float64",
         "--repeats", "2", "--min-time", "0.001", "--methods", methods, "--results", str(tmp_path)],
        capture_output=True, text=True, check=True, cwd=tmp_path, timeout=300,
    )
    assert "28 B/element (float32), 56 B/element (float64)" in out.stdout
    table = [line for line in out.stdout.splitlines() if line.startswith("| ")]
    n_methods = len(methods.split(","))
    # header + rows; book model: header + 3 rows per backend (numpy, numba) + 3 torch rows
    assert len(table) == 1 + 2 * 2 * n_methods + 1 + 2 * 3 + 3
    with open(tmp_path / "bench_step.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * n_methods
    assert {r["method"] for r in rows} == set(methods.split(","))
    assert all(float(r["time_s"]) > 0 for r in rows)
    fused = {(r["n"], r["dtype"]): float(r["time_s"]) for r in rows if r["method"] == "torch fused"}
    roof = {(r["n"], r["dtype"]): float(r["time_s"]) for r in rows if r["method"] == "roof (stream)"}
    for r in rows:  # the ratios divide by the times of the rows of the same size and dtype
        key, t = (r["n"], r["dtype"]), float(r["time_s"])
        assert float(r["vs_torch_fused"]) == pytest.approx(t / fused[key])
        assert float(r["vs_roof"]) == pytest.approx(roof[key] / t)
    data = json.loads((tmp_path / "bench_step.json").read_text())
    assert data["meta"]["byte_model"] == {"float32": 28, "float64": 56}
    assert {r["method"] for r in data["book_model"]} >= {"torch fused", "adam_np[numba] Adam([w, b])"}
    assert (tmp_path / "bench_step.png").stat().st_size > 0
    peaks = {r["method"]: r["peak_extra_bytes"] for r in rows if r["n"] == "100"}
    assert peaks["torch fused"] == ""  # not measurable with tracemalloc: left empty, not faked


def test_cli_has_a_bench_command():
    args = cli.build_parser().parse_args(["bench", "--quick", "--results", "out"])
    assert args.func is not None and args.quick and args.results == Path("out")
