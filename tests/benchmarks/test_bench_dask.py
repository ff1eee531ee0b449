"""Smoke tests of the Dask benchmarks (benchmarks/bench_dask.py, bench_train_dask.py): tiny sizes, the table and
JSON of the right shape, the ratios computed from the right rows; no timing is asserted."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from benchmarks import bench_dask, bench_train_dask


@pytest.mark.slow
def test_bench_dask_runs_and_writes_its_table(tmp_path, capsys):
    assert bench_dask.main(["--n", "20000", "--chunk", "5000", "--repeats", "2", "--overhead-n", "1000",
                       "--flat-steps", "45", "--memory-limit", "1GiB", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "bench_dask.json").read_text())
    methods = [row["method"] for row in result["rows"]]
    assert methods == ["dask adam, nonfinite=propagate", "dask adam, nonfinite=raise",
                       "dask update (array API), propagate", "dask roof", "numba, 1 process"]
    assert all(row["seconds"] > 0 and np.isfinite(row["gb_s"]) for row in result["rows"])
    roof = next(row["seconds"] for row in result["rows"] if row["method"] == "dask roof")
    assert all(row["vs_roof"] == pytest.approx(roof / row["seconds"]) for row in result["rows"])
    assert len(result["worker_rss_mib"]) == 2
    flat = result["flat"]
    assert flat["steps"] == 45 and flat["graph_tasks"] == 2  # one task per chunk after 45 steps
    # history cut every 20 steps: at most 20 steps of it on the scheduler, not all 45 (~10 tasks per step)
    assert flat["scheduler_tasks"] < 250 and flat["scheduler_tasks_first"] < 250
    assert "| dask roof |" in out and (tmp_path / "bench_dask.md").read_text().strip() == out.strip()



@pytest.mark.slow
def test_bench_train_dask_runs_and_writes_its_table(tmp_path, capsys):
    store = str(tmp_path / "s.zarr")
    assert bench_train_dask.main(["--store", store, "--rows", "30000", "--features", "3", "--batches", "5000", "1000",
                             "--max-steps", "10", "--results", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "bench_train_dask.json").read_text())
    assert result["rows"] == 30000 and os.path.isdir(store) and result["read_roof_seconds"] > 0
    first, second = result["epochs"]
    assert first["full_epoch"] and first["steps"] == 6 and first["rows"] == 30000
    assert not second["full_epoch"] and second["steps"] == 10 and second["rows"] == 10_000
    assert second["epoch_seconds"] == pytest.approx(second["seconds"] * 3)  # extrapolated to the 30 000 rows
    assert len(result["worker_peak_rss_mib"]) == 2 and result["in_memory"][0]["rows_per_s"] > 0
    assert "| 5e+03 |" in capsys.readouterr().out
