"""A worker killed mid-step on a real LocalCluster(processes=True) (tests/_worker_kill.py, in a subprocess
bounded in time): within the scheduler's kept task history the step is recomputed and the run ends bit for bit
where an uninterrupted run ends; after the history was cut it stops with one clear error, and the checkpoint
taken before the step loads with the values of that step."""

from __future__ import annotations

import pytest

from conftest import run_fault_script


def _run(tmp_path, *args):
    report = run_fault_script("_worker_kill.py", str(tmp_path / "ck"), *args, timeout=240)
    assert not report["victim_alive"] and report["workers_after"] == 2, report  # killed, and the nanny restarted it
    return report


@pytest.mark.slow
def test_worker_killed_mid_step_is_recomputed_from_the_task_history(tmp_path):
    report = _run(tmp_path)  # history cut every 20 steps; the kill lands in step 4
    assert report["outcome"] == "finished" and report["bitwise_equal"], report


@pytest.mark.slow
def test_worker_killed_after_a_cut_fails_clearly_and_the_checkpoint_loads(tmp_path):
    report = _run(tmp_path, "2")  # cut after step 2: the chunks of step 3's state on the victim are gone for good
    assert report["outcome"] == "error", report
    assert report["error"].startswith("step 4 failed on the cluster")
    assert "is no longer on any worker" in report["error"]
    assert "still those of step 3" in report["error"] and "load_zarr" in report["error"]
    assert report["restored_step"] == 3 and report["restored_equal"], report
