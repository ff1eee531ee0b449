"""Smoke test of the step benchmark: tiny sizes, a table and CSV of the right shape (no timings asserted)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from adam_np import cli

ROOT = Path(__file__).resolve().parents[1]


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
    fused = [r for r in rows if r["method"] == "torch fused"]
    assert all(float(r["vs_torch_fused"]) == 1.0 for r in fused)
    data = json.loads((tmp_path / "bench_step.json").read_text())
    assert data["meta"]["byte_model"] == {"float32": 28, "float64": 56}
    assert {r["method"] for r in data["book_model"]} >= {"torch fused", "adam_np[numba] Adam([w, b])"}
    assert (tmp_path / "bench_step.png").stat().st_size > 0
    peaks = {r["method"]: r["peak_extra_bytes"] for r in rows if r["n"] == "100"}
    assert peaks["torch fused"] == ""  # not measurable with tracemalloc: left empty, not faked


def test_cli_has_a_bench_command(capsys):
    args = cli.build_parser().parse_args(["bench", "--quick", "--results", "out"])
    assert args.func is not None and args.quick and args.results == Path("out")
