"""A worker killed mid-step on a real LocalCluster(processes=True): the run recomputes from lineage and ends
bit for bit where an uninterrupted run ends, or stops with one clear error and a loadable checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("_worker_kill.py")


@pytest.mark.slow
def test_worker_killed_mid_step(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SCRIPT.parent.parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "ck")], capture_output=True, text=True,
                          timeout=240, env=env, check=False)  # bounded: a hung cluster fails the test
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not report["victim_alive"]  # the kill happened: that worker process is gone
    if report["outcome"] == "finished":
        assert report["bitwise_equal"], report
    else:
        assert report["error"].startswith("step ") and "failed on the cluster" in report["error"], report
        assert report["restored_step"] == 3 and report["restored_equal"], report
