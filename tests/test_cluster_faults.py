"""A worker killed mid-epoch on a real LocalCluster(processes=True) while training on a Zarr store
(tests/_train_worker_kill.py, in a subprocess bounded in time): the run finishes bit for bit where an
uninterrupted run ends (lost chunks are read again, lost tasks rerun), or stops with one clear error and the
checkpoint taken before the kill loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("_train_worker_kill.py")


@pytest.mark.slow
def test_worker_killed_mid_epoch(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SCRIPT.parent.parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=300,
                          env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not report["victim_alive"], report  # the kill happened
    if report["outcome"] == "finished":
        assert report["steps"] == 800 and report["bitwise_equal"], report
    else:
        assert report["restored_batch"] == 20, report
