"""Run by test_cluster_faults.py in a subprocess (bounded there): kill a worker of a real
``LocalCluster(processes=True)`` in the middle of a training epoch and report what happened as JSON.

Usage: python tests/_train_worker_kill.py WORK_DIR
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import numpy as np

from adam_np.book.chapter7 import make_optimizer
from adam_np.cluster import local_client
from adam_np.cluster.data import content_fingerprint, make_data, open_data
from adam_np.cluster.train import (
    Plan,
    batch_gradient,
    init_cluster_train,
    load_cluster_run,
    run_cluster_train,
    save_cluster_run,
)

ROWS, CHUNK, BATCH, SEED = 40_000, 2_000, 50, 11


def main(work):
    report = {}
    store, ck = os.path.join(work, "d.zarr"), os.path.join(work, "ck.npz")
    with local_client(n_workers=2, processes=True, threads_per_worker=1, memory_limit="1GiB") as client:
        make_data(store, ROWS, 5, chunk_rows=CHUNK, seed=1)
        X, y, meta = open_data(store)
        meta["content"] = content_fingerprint(X, y)
        plan = Plan(X.chunks[0], BATCH, SEED)
        settings = {"batch_size": BATCH, "epochs": 1, "seed": SEED}
        optimizer = make_optimizer("adam", in_place=True)
        state = init_cluster_train(optimizer, X, y, SEED)
        victim = sorted(client.run(os.getpid).values())[0]
        timer = threading.Timer(1.5, os.kill, (victim, signal.SIGKILL))

        def on_step(s):
            if s.batch == 20:
                save_cluster_run(ck, s, optimizer, meta, settings)
                timer.start()

        start = time.monotonic()
        try:
            state = run_cluster_train(state, optimizer, X, y, plan, 1, client, on_step=on_step)
            report["outcome"] = "finished"
        except Exception as exc:  # the test accepts one clear error, then checks the checkpoint
            report["outcome"] = "error"
            report["error"] = f"{type(exc).__name__}: {exc}"
            restored = load_cluster_run(ck, make_optimizer("adam", in_place=True), X, y, meta, settings, plan)
            report["restored_batch"] = restored.batch
        report["seconds"] = time.monotonic() - start
        report["steps"] = state.batch + plan.batches * state.epoch
        report["victim_alive"] = victim in client.run(os.getpid).values()
        Xn, yn = X.compute(), y.compute()
    rng = np.random.default_rng(SEED)
    params = [rng.normal(0.0, 0.01, size=(5, 1)), np.zeros(1)]
    opt, opt_state = make_optimizer("adam", in_place=True), None
    opt_state = opt.init(params)
    for b in range(plan.batches):
        params, opt_state = opt.update(list(batch_gradient(Xn, yn, plan, 0, b, *params)), opt_state, params)
    report["bitwise_equal"] = all(np.array_equal(a, b) for a, b in zip(state.params, params))
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
