"""Run by test_dask_faults.py in a subprocess (bounded there): kill a worker of a real
``LocalCluster(processes=True)`` in the middle of an Adam step and report what happened as JSON.

Usage: python tests/_worker_kill.py CHECKPOINT_DIR [LINEAGE_STEPS]
(LINEAGE_STEPS: how often the optimizer cuts the scheduler's task history; 2 puts a cut before the kill.)
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import dask.array as da
import numpy as np

import adam_np
import adam_np.optimizer
from adam_np.cluster import load_zarr, local_client, save_zarr

N, CHUNK, STEPS, KILLED_STEP = 4000, 250, 6, 3
RESTART_TIMEOUT_S = 60  # a busy 2-core machine restarts a worker process in seconds; give it a minute


def _block(block, step, block_id=None):
    time.sleep(0.2)  # a step takes ~1.6 s on two workers: the kill lands inside one
    return np.random.default_rng([step, block_id[0]]).normal(size=block.shape)


def grads(step):
    return [da.map_blocks(_block, da.zeros(N, chunks=CHUNK), step, dtype=float, meta=np.empty((0,)))]


def numpy_grads(step):
    return [np.concatenate([np.random.default_rng([step, i]).normal(size=CHUNK) for i in range(N // CHUNK)])]


def main(path):
    x0 = np.linspace(-1.0, 1.0, N)
    reference = adam_np.Adam([x0.copy()], lr=0.01)
    at_checkpoint = None
    for k in range(STEPS):
        reference.step(numpy_grads(k))
        if k == KILLED_STEP - 1:
            at_checkpoint = reference.params[0].copy()
    report = {}
    with local_client(n_workers=2, processes=True, threads_per_worker=1, memory_limit="1GiB") as client:
        opt = adam_np.Adam([da.from_array(x0, chunks=CHUNK)], lr=0.01)
        for k in range(KILLED_STEP):
            opt.step(grads(k))
        save_zarr(path, opt)
        victim = sorted(client.run(os.getpid).values())[0]
        threading.Timer(0.5, os.kill, (victim, signal.SIGKILL)).start()
        start = time.monotonic()
        try:
            for k in range(KILLED_STEP, STEPS):
                opt.step(grads(k))
            got = opt.params[0].compute()
            report["outcome"] = "finished"
            report["bitwise_equal"] = bool(np.array_equal(got, reference.params[0]))
        except RuntimeError as exc:
            report["outcome"] = "error"
            report["error"] = str(exc)
            restored = adam_np.Adam([da.zeros(N, chunks=CHUNK)])
            report["restored_step"] = load_zarr(path, restored).step
            report["restored_equal"] = bool(np.array_equal(restored.params[0].compute(), at_checkpoint))
        report["seconds"] = time.monotonic() - start
        try:  # the nanny restarts the victim: wait for that by condition (bounded), not by a fixed sleep
            client.wait_for_workers(2, timeout=RESTART_TIMEOUT_S)
        except TimeoutError:
            pass  # reported as fewer workers; the test names it
        report["workers_after"] = len(client.scheduler_info()["workers"])
        report["victim_alive"] = victim in client.run(os.getpid).values()
    print(json.dumps(report))


if __name__ == "__main__":
    if len(sys.argv) > 2:
        adam_np.optimizer.LINEAGE_STEPS = int(sys.argv[2])
    main(sys.argv[1])
