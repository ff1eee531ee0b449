"""The ``adam-np train`` sub-command: D2L 7.8's experiment with any of the chapter's optimizers."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any

from ._common import (
    add_cluster_args,
    add_data_args,
    check_output,
    cluster_client,
    is_data_path,
    load,
    nonneg_float,
    positive_float,
    positive_int,
)

__all__ = ["add", "run"]

OPTIMIZER_NAMES = ("adam", "sgd", "momentum", "adagrad", "rmsprop", "adadelta")
PROGRESS_DELAY_S = 2.0
"""The progress bar appears only once a run has lasted this long (tqdm's ``delay``)."""


def add(subparsers: Any) -> None:
    """Register ``adam-np train``.

    Parameters
    ----------
    subparsers : argparse sub-parsers action
    """
    p = subparsers.add_parser(
        "train", help="run the D2L ch. 7.8 linear-regression experiment",
        description="Train D2L's linear regression with one of the chapter's optimizers and print "
                    "'loss: %%f, %%f sec per epoch' as the book does.")
    add_data_args(p)
    p.add_argument("--optimizer", choices=OPTIMIZER_NAMES, default="adam", help="update rule (default adam)")
    p.add_argument("--lr", type=positive_float, help="learning rate (default: the book's for the optimizer)")
    p.add_argument("--eps", type=nonneg_float, help="epsilon (default: the book's for the optimizer)")
    p.add_argument("--epochs", type=positive_int, default=2, help="number of epochs (default 2)")
    p.add_argument("--batch-size", type=positive_int, default=10, help="mini-batch size (default 10)")
    p.add_argument("--plot", metavar="FILE.png", help="also save the loss curve to this PNG")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of the book's line")
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    g = p.add_argument_group("checkpoints", "interrupt and resume a run bit for bit")
    g.add_argument("--checkpoint", metavar="PATH", help="checkpoint file to write (default: the --resume file)")
    g.add_argument("--checkpoint-every", metavar="N", type=positive_int,
                   help="write the checkpoint every N optimizer steps and at the end")
    g.add_argument("--resume", metavar="PATH", help="continue the run saved in this checkpoint (same flags)")
    g.add_argument("--max-steps", metavar="N", type=positive_int,
                   help="stop after N optimizer steps in this invocation, with a checkpoint; continue with --resume "
                        "(reaching the run's last step finishes it as usual)")
    add_cluster_args(p)
    p.set_defaults(func=run, _parser=p)


def _optimizer(args: argparse.Namespace) -> Any:
    from ..book.chapter7 import make_optimizer

    hyper = {k: getattr(args, k) for k in ("lr", "eps") if getattr(args, k) is not None}
    if args.optimizer == "adam":  # the CLI's arrays are writeable NumPy/CuPy: the in-place kernel path
        hyper["in_place"] = True
    try:
        return make_optimizer(args.optimizer, **hyper)
    except ValueError as exc:
        flag = next((f"--{k}" for k in hyper if repr(k) in str(exc) or str(exc).startswith(k)), "--optimizer")
        args._parser.error(f"argument {flag}: {exc}")


class _Progress:
    """``on_step`` callback: a tqdm bar on stderr that shows up only after :data:`PROGRESS_DELAY_S`."""

    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, delay=PROGRESS_DELAY_S, file=sys.stderr, unit="step", leave=False)

    def __call__(self, state: Any) -> None:
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


class _Steps:
    """The loop's ``on_step``: counts the steps, moves the progress bar, saves every ``--checkpoint-every`` steps
    and stops after ``--max-steps`` (unless the run's last step is reached: the loop then finishes the run)."""

    def __init__(self, args: argparse.Namespace, batches: int, state: Any, save: Any) -> None:
        self.args, self.batches, self.save, self.count = args, batches, save, 0
        self.progress = None if args.quiet else _Progress(args.epochs * batches)
        if self.progress is not None:
            self.progress.bar.update(self.done(state))

    def done(self, state: Any) -> int:
        """Steps of the run completed by ``state`` (earlier invocations included)."""
        return state.epoch * self.batches + state.batch

    def diverged(self, state: Any) -> None:
        """The parser error for a step whose gradient became NaN/inf (the loop's ``state`` holds the steps done)."""
        self.args._parser.error(f"argument --lr: training diverged at step {self.done(state) + 1} "
                                "(the gradient became NaN/inf); try a smaller --lr")

    def __call__(self, s: Any) -> bool:
        self.count += 1
        if self.progress is not None:
            self.progress(s)
        if self.args.checkpoint_every is not None and self.count % self.args.checkpoint_every == 0:
            self.save(s)
        last = s.epoch == self.args.epochs - 1 and s.batch == self.batches
        return self.args.max_steps is not None and self.count >= self.args.max_steps and not last

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()

    def save_at_end(self, state: Any, ckpt_path: str | None) -> None:
        """The final checkpoint: after periodic saves, a --max-steps stop, or a finished run."""
        args = self.args
        finished = state.epoch >= args.epochs
        if ckpt_path is not None and (args.checkpoint_every is not None or args.max_steps is not None or finished):
            self.save(state)


def _check_output_flags(args: argparse.Namespace) -> str | None:
    """Checkpoint and plot flags, checked before anything is loaded; returns the checkpoint path."""
    parser = args._parser
    ckpt_path = args.checkpoint or args.resume
    for flag in ("checkpoint_every", "max_steps"):
        if getattr(args, flag) is not None and ckpt_path is None:
            parser.error(f"argument --{flag.replace('_', '-')}: needs --checkpoint PATH (or --resume PATH)")
    if args.resume is not None and os.path.isdir(args.resume):
        parser.error(f"argument --resume: {args.resume!r} is a directory, expected a checkpoint file")
    if args.checkpoint is not None:
        check_output(parser, "--checkpoint", args.checkpoint)
    if args.plot is not None:
        check_output(parser, "--plot", args.plot, make_parents=True, suffix=".png")
    return ckpt_path


def _finish(args: argparse.Namespace, state: Any, optimizer: Any, steps: int, ckpt_path: str | None,
            extra: dict) -> int:
    """Print the book's line (or JSON), save the plot; or say where a stopped run continues."""
    from ..book.train import result_of

    if state.epoch < args.epochs:
        print(f"stopped after {steps} steps (epoch {state.epoch}, batch {state.batch}); "
              f"continue with --resume {ckpt_path}", file=sys.stderr)
        return 0
    result = result_of(state, optimizer, args.epochs)
    if args.plot:
        from ..book.plot import plot_loss

        plot_loss(result, args.plot, title=f"{args.data}, {optimizer.name}")
    if args.json:
        out = result.to_dict()
        out.update(data=args.data, batch_size=args.batch_size, seed=args.seed, hyperparams=optimizer.hyperparams())
        out.update(extra)
        print(json.dumps(out))
    else:
        print(result.line())
    return 0


def _saved_seed(path: str) -> int | None:
    """The seed a cluster run's checkpoint was made with (None when it cannot be read: load names why)."""
    from .._npz import CheckpointError, read_verified
    from ..cluster.train import FORMAT_NAME, FORMAT_VERSION

    try:
        _, meta = read_verified(path, FORMAT_NAME, FORMAT_VERSION)
    except (CheckpointError, OSError):
        return None
    seed = meta.get("run", {}).get("settings", {}).get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def _run_cluster(args: argparse.Namespace, ckpt_path: str | None) -> int:
    """``adam-np train --data PATH.zarr|PATH.npy``: synchronous data-parallel Adam on a Dask cluster."""
    import numpy as np

    from ..checkpoint import CheckpointError
    from ..cluster.data import DataError, open_data
    from ..cluster.train import (
        NonFiniteData,
        Plan,
        init_cluster_train,
        load_cluster_run,
        run_cluster_train,
        save_cluster_run,
    )

    parser = args._parser
    if args.backend != "numpy":
        parser.error("argument --backend: data on a Dask cluster train with numpy parameters")
    if args.labels is not None and not args.data.rstrip("/").endswith(".npy"):
        parser.error("argument --labels: only for --data PATH.npy features")
    optimizer = _optimizer(args)
    try:
        X, y, data_meta = open_data(args.data, args.labels)
    except DataError as exc:
        parser.error(f"argument --data: {exc}")
    n = X.shape[0]
    if args.batch_size > n:
        parser.error(f"argument --batch-size: {args.batch_size} is larger than the data ({n} rows)")
    seed = args.seed
    if seed is None and args.resume is not None:
        seed = _saved_seed(args.resume)
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % 2**63)
    settings = {"batch_size": args.batch_size, "epochs": args.epochs, "seed": seed}
    plan = Plan(X.chunks[0], args.batch_size, seed)
    with cluster_client(args) as client:
        if args.resume is not None:
            try:
                state = load_cluster_run(args.resume, optimizer, X, y, data_meta, settings, plan)
            except CheckpointError as exc:
                parser.error(f"argument --resume: {exc}")
        else:
            state = init_cluster_train(optimizer, X, y, seed)
        on_step = _Steps(args, plan.batches, state,
                         lambda s: save_cluster_run(ckpt_path, s, optimizer, data_meta, settings))
        try:
            state = run_cluster_train(state, optimizer, X, y, plan, args.epochs, client, on_step=on_step)
        except NonFiniteData as exc:
            parser.error(f"argument --data: {exc}; nothing was saved for the failing step")
        except FloatingPointError:
            on_step.diverged(state)
        except Exception as exc:  # the cluster's: a lost scheduler, a task that failed for good...
            where = f"; continue from the last checkpoint with --resume {ckpt_path}" if ckpt_path else ""
            print(f"adam-np train: step {on_step.done(state) + 1} failed on the cluster "
                  f"({type(exc).__name__}: {exc}){where}", file=sys.stderr)
            return 1
        finally:
            on_step.close()
        on_step.save_at_end(state, ckpt_path)
        workers = len(client.scheduler_info()["workers"])
    return _finish(args, state, optimizer, on_step.count, ckpt_path,
                   {"rows": n, "chunks": len(X.chunks[0]), "workers": workers, "seed": seed})


def run(args: argparse.Namespace) -> int:
    """Run ``adam-np train``; returns the exit status.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    int
    """
    from ..book.train import init_train
    from ..book.train import run_train as run_loop

    parser = args._parser
    ckpt_path = _check_output_flags(args)
    if is_data_path(args.data):
        return _run_cluster(args, ckpt_path)
    for flag in ("labels", "scheduler"):
        if getattr(args, flag) is not None:
            parser.error(f"argument --{flag}: only for --data PATH.zarr / PATH.npy")
    optimizer = _optimizer(args)
    features, labels = load(args)
    settings = {"data": args.data, "backend": args.backend, "seed": args.seed, "batch_size": args.batch_size,
                "epochs": args.epochs}
    if args.resume is not None:
        from ..book.resume import load_run
        from ..checkpoint import CheckpointError

        try:
            state = load_run(args.resume, optimizer, features, labels, settings=settings)
        except CheckpointError as exc:
            parser.error(f"argument --resume: {exc}")
    else:
        state = init_train(optimizer, features, labels, seed=args.seed)
    from ..book.resume import save_run

    batches = math.ceil(features.shape[0] / args.batch_size)
    on_step = _Steps(args, batches, state, lambda s: save_run(ckpt_path, s, optimizer, features, labels,
                                                              settings=settings))
    try:
        state = run_loop(state, optimizer, features, labels, args.batch_size, args.epochs, on_step=on_step)
    except FloatingPointError:  # run_loop advances ``state`` in place: it holds the steps done so far
        on_step.diverged(state)
    finally:
        on_step.close()
    on_step.save_at_end(state, ckpt_path)
    return _finish(args, state, optimizer, on_step.count, ckpt_path, {"backend": args.backend})


