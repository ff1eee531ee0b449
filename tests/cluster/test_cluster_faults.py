"""A worker killed mid-epoch on a real LocalCluster(processes=True) while training on a Zarr store
(tests/_train_worker_kill.py, in a subprocess bounded in time): the run finishes bit for bit where an
uninterrupted run ends (lost chunks are read again, lost tasks rerun), or stops with one clear error and the
checkpoint taken before the kill loads."""

from __future__ import annotations

import pytest

from conftest import run_fault_script


@pytest.mark.slow
def test_worker_killed_mid_epoch(tmp_path):
    report = run_fault_script("_train_worker_kill.py", str(tmp_path), timeout=300)
    assert not report["victim_alive"], report  # the kill happened
    if report["outcome"] == "finished":
        assert report["steps"] == 800 and report["bitwise_equal"], report
    else:
        assert report["restored_batch"] == 20, report
