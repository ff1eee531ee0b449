"""The ``adam-np train`` sub-command: D2L 7.8's experiment with any of the chapter's optimizers."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
from typing import Any

from ._common import (
    add_cluster_args,
    add_data_args,
    check_output,
    cluster_client,
    fail,
    is_data_path,
    load,
    nonneg_float,
    positive_float,
    positive_int,
    require_extra,
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
                    "'loss: %f, %f sec per epoch' as the book does.")
    add_data_args(p, beyond_memory=True)
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


class _Interrupt:
    """A context manager: the first Ctrl-C (SIGINT) only sets :attr:`requested`, so the loop stops cleanly after
    the current step (``_Steps`` returns True); a second one interrupts at once (``KeyboardInterrupt``)."""

    def __init__(self) -> None:
        self.requested = False
        self.previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _Interrupt:
        try:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread (e.g. main() called from a worker thread): Ctrl-C as usual
            self.previous = None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


class _Steps:
    """The loop's ``on_step``: counts the steps, moves the progress bar, saves every ``--checkpoint-every`` steps
    and stops after ``--max-steps`` (unless the run's last step is reached: the loop then finishes the run) or
    after a Ctrl-C. A recorded loss that is NaN or inf ends the run as diverged."""

    def __init__(self, args: argparse.Namespace, batches: int, state: Any, save: Any) -> None:
        self.args, self.batches, self.save, self.count = args, batches, save, 0
        self.records = len(state.losses)  # losses recorded before this run's steps (the data check names NaN data)
        self.interrupt = _Interrupt()
        self.progress = None if args.quiet else _Progress(args.epochs * batches)
        if self.progress is not None:
            self.progress.bar.update(self.done(state))

    def done(self, state: Any) -> int:
        """Steps of the run completed by ``state`` (earlier invocations included)."""
        return state.epoch * self.batches + state.batch

    def __call__(self, s: Any) -> bool:
        self.count += 1
        if self.progress is not None:
            self.progress(s)
        if len(s.losses) > self.records and not math.isfinite(s.losses[-1]):
            raise FloatingPointError(f"the loss became {s.losses[-1]}")
        if self.args.checkpoint_every is not None and self.count % self.args.checkpoint_every == 0:
            self.save(s)
        last = s.epoch == self.args.epochs - 1 and s.batch == self.batches
        if self.interrupt.requested:
            return not last
        return self.args.max_steps is not None and self.count >= self.args.max_steps and not last

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()

    def save_at_end(self, state: Any, ckpt_path: str | None) -> str | None:
        """The final checkpoint: after periodic saves, a --max-steps stop, a Ctrl-C, or a finished run.

        Returns the one-line error when it cannot be written (the previous checkpoint stays intact), else None.
        """
        args = self.args
        finished = state.epoch >= args.epochs
        if ckpt_path is not None and (args.checkpoint_every is not None or args.max_steps is not None or finished
                                      or self.interrupt.requested):
            try:
                self.save(state)
            except OSError as exc:
                return (f"adam-np train: error: could not write the checkpoint {ckpt_path!r}: {exc} "
                        "(the previous checkpoint, if any, is intact)")
        return None


def _finish_saved(args: argparse.Namespace, state: Any, optimizer: Any, on_step: _Steps, ckpt_path: str | None,
                  extra: dict, diverged: str | None) -> int:
    """Write the final checkpoint, then report: a finished run's result is printed even when the checkpoint
    cannot be written (exit 1 after it); a stopped run whose checkpoint failed only says so (exit 1)."""
    save_error = None if diverged is not None else on_step.save_at_end(state, ckpt_path)
    if save_error is not None and state.epoch < args.epochs:
        print(save_error, file=sys.stderr)
        return 1
    code = _finish(args, state, optimizer, on_step.count, ckpt_path, extra, diverged,
                   interrupted=on_step.interrupt.requested)
    if save_error is not None:
        print(save_error, file=sys.stderr)
        return 1
    return code


def _quiet_overflow() -> Any:
    """NumPy's overflow/invalid warnings off during training: divergence is detected and reported as one line."""
    import numpy as np

    return np.errstate(over="ignore", invalid="ignore", divide="ignore")


def _check_output_flags(args: argparse.Namespace) -> str | None:
    """Checkpoint and plot flags, checked before anything is loaded or trained; returns the checkpoint path."""
    parser = args._parser
    ckpt_path = args.checkpoint or args.resume
    for flag in ("checkpoint_every", "max_steps"):
        if getattr(args, flag) is not None and ckpt_path is None:
            parser.error(f"argument --{flag.replace('_', '-')}: needs --checkpoint PATH (or --resume PATH)")
    if args.resume is not None and os.path.isdir(args.resume):
        fail(parser, f"argument --resume: {args.resume!r} is a directory, expected a checkpoint file")
    inputs = {"--data": args.data if is_data_path(args.data) else None, "--labels": args.labels,
              "--data-path": args.data_path}
    if ckpt_path is not None:
        check_output(parser, "--checkpoint" if args.checkpoint else "--resume", ckpt_path, inputs=inputs)
    if args.plot is not None:
        check_output(parser, "--plot", args.plot, suffix=".png",
                     inputs={**inputs, "--checkpoint": args.checkpoint, "--resume": args.resume})
    return ckpt_path


def _json_safe(value: Any) -> Any:
    """``value`` with every NaN/inf float replaced by None (``json`` would write invalid NaN/Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _diverged_reason(result: Any) -> str | None:
    """Why a finished run counts as diverged: a NaN/inf loss, or a final loss above the initial one."""
    first, last = result.losses[0], result.final_loss
    if not all(math.isfinite(x) for x in result.losses):
        return f"the loss became {next(x for x in result.losses if not math.isfinite(x))}"
    if last > first:
        return f"the loss grew from {first:g} to {last:g}"
    return None


def _finish(args: argparse.Namespace, state: Any, optimizer: Any, steps: int, ckpt_path: str | None,
            extra: dict, diverged: str | None = None, *, interrupted: bool = False) -> int:
    """Print the book's line (or JSON) first, then save the plot; or say where a stopped run continues.

    Returns 1 for a diverged run (the message on stderr; ``--json`` still prints the record, NaN/inf as null and
    ``"diverged"`` saying why), 130 after a Ctrl-C, 1 when the plot cannot be written (the result is printed).
    """
    from ..book.train import result_of

    if diverged is None and state.epoch < args.epochs:
        how = "interrupted" if interrupted else "stopped"
        where = f"continue with --resume {ckpt_path}" if ckpt_path else "nothing was saved (add --checkpoint PATH)"
        print(f"{how} after {steps} steps (epoch {state.epoch}, batch {state.batch}); {where}", file=sys.stderr)
        return 130 if how == "interrupted" else 0
    result = result_of(state, optimizer, args.epochs)
    if diverged is None:
        diverged = _diverged_reason(result)
    if args.json:
        out = result.to_dict()
        out.update(data=args.data, batch_size=args.batch_size, seed=args.seed, hyperparams=optimizer.hyperparams())
        out.update(extra)
        out["diverged"] = diverged
        print(json.dumps(_json_safe(out), allow_nan=False))
    elif diverged is None:
        print(result.line())
    if diverged is not None:
        hint = "--lr" if optimizer.hyperparams().get("eps", 1.0) != 0 else "--lr or a larger --eps"
        print(f"adam-np train: training diverged after {steps} steps ({diverged}); try a smaller {hint}",
              file=sys.stderr)
        return 1
    if args.plot:
        from ..book.plot import plot_loss

        try:
            plot_loss(result, args.plot, title=f"{args.data}, {optimizer.name}")
        except OSError as exc:
            print(f"adam-np train: error: argument --plot: could not write {args.plot!r}: {exc}", file=sys.stderr)
            return 1
    return 0


def _saved_seed(path: str) -> int | None:
    """The seed a run's checkpoint was made with (None when it cannot be read: the load then names why)."""
    from ..checkpoint import CheckpointError, read

    try:
        run = read(path).extra.get("run")
    except (CheckpointError, OSError):
        return None
    settings = run.get("settings") if isinstance(run, dict) else None  # a hand-edited file: load names what is wrong
    seed = settings.get("seed") if isinstance(settings, dict) else None
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def _resolve_seed(args: argparse.Namespace) -> int:
    """The run's seed: ``--seed N``; else the checkpoint's when resuming; else 0. ``--seed random`` draws fresh
    entropy, recorded (``--json``, checkpoints) so that the run can be repeated."""
    import numpy as np

    if args.seed == "random":
        return int(np.random.SeedSequence().entropy % 2**63)
    if args.seed is None and args.resume is not None:
        saved = _saved_seed(args.resume)
        return 0 if saved is None else saved
    return 0 if args.seed is None else args.seed


def _run_cluster(args: argparse.Namespace, ckpt_path: str | None) -> int:
    """``adam-np train --data PATH.zarr|PATH.npy``: synchronous data-parallel Adam on a Dask cluster."""
    parser = args._parser
    require_extra(parser, "dask", f"--data {args.data}")
    if args.backend != "numpy":
        parser.error("argument --backend: data on a Dask cluster train with numpy parameters")
    if args.labels is not None and not args.data.rstrip("/").endswith(".npy"):
        parser.error("argument --labels: only for --data PATH.npy features")

    from ..checkpoint import CheckpointError
    from ..cluster.data import DataError, content_fingerprint, open_data
    from ..cluster.train import (
        NonFiniteData,
        Plan,
        init_cluster_train,
        load_cluster_run,
        run_cluster_train,
        save_cluster_run,
    )

    optimizer = _optimizer(args)
    try:
        X, y, data_meta = open_data(args.data, args.labels)
    except (DataError, OSError) as exc:
        fail(parser, f"argument --data: {exc}")
    n = X.shape[0]
    if args.batch_size > n:
        fail(parser, f"argument --batch-size: {args.batch_size} is larger than the data ({n} rows)")
    seed = args.seed = _resolve_seed(args)
    settings = {"batch_size": args.batch_size, "epochs": args.epochs, "seed": seed}
    plan = Plan(X.chunks[0], args.batch_size, seed)
    with cluster_client(args) as client:
        if args.resume is not None:
            try:
                state = load_cluster_run(args.resume, optimizer, X, y, data_meta, settings, plan)
            except CheckpointError as exc:
                fail(parser, f"argument --resume: {exc}")
        else:
            state = init_cluster_train(optimizer, X, y, seed)
            if ckpt_path is not None:  # what a resumed run checks the data's values against (one read, on the workers)
                data_meta["content"] = content_fingerprint(X, y)
        on_step = _Steps(args, plan.batches, state,
                         lambda s: save_cluster_run(ckpt_path, s, optimizer, data_meta, settings))
        diverged = None
        try:
            with on_step.interrupt, _quiet_overflow():
                state = run_cluster_train(state, optimizer, X, y, plan, args.epochs, client, on_step=on_step)
        except NonFiniteData as exc:
            on_step.close()
            fail(parser, f"argument --data: {exc}; nothing was saved for the failing step")
        except FloatingPointError as exc:
            diverged = str(exc) or "the gradient became NaN/inf"
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # the cluster's: a lost scheduler, a task that failed for good...
            on_step.close()
            where = f"; continue from the last checkpoint with --resume {ckpt_path}" if ckpt_path else ""
            print(f"adam-np train: step {on_step.done(state) + 1} failed on the cluster "
                  f"({type(exc).__name__}: {exc}){where}", file=sys.stderr)
            return 1
        finally:
            on_step.close()
        workers = len(client.scheduler_info()["workers"])
        return _finish_saved(args, state, optimizer, on_step, ckpt_path,
                             {"rows": n, "chunks": len(X.chunks[0]), "workers": workers, "seed": seed}, diverged)


def run(args: argparse.Namespace) -> int:
    """Run ``adam-np train``; returns the exit status.

    0 when the run finished (or stopped at ``--max-steps``), 1 when it diverged or an output could not be
    written, 2 for bad flags or data, 130 after a Ctrl-C (with the checkpoint written when one was asked for).

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
    args.seed = _resolve_seed(args)
    features, labels = load(args)
    if args.batch_size > features.shape[0]:
        fail(parser, f"argument --batch-size: {args.batch_size} is larger than the data ({features.shape[0]} rows)")
    settings = {"data": args.data, "backend": args.backend, "seed": args.seed, "batch_size": args.batch_size,
                "epochs": args.epochs}
    if args.resume is not None:
        from ..book.resume import load_run
        from ..checkpoint import CheckpointError

        try:
            state = load_run(args.resume, optimizer, features, labels, settings=settings)
        except (CheckpointError, OSError) as exc:
            fail(parser, f"argument --resume: {exc}")
    else:
        state = init_train(optimizer, features, labels, seed=args.seed)
    from ..book.resume import save_run

    batches = math.ceil(features.shape[0] / args.batch_size)
    on_step = _Steps(args, batches, state, lambda s: save_run(ckpt_path, s, optimizer, features, labels,
                                                              settings=settings))
    diverged = None
    try:
        with on_step.interrupt, _quiet_overflow():
            state = run_loop(state, optimizer, features, labels, args.batch_size, args.epochs, on_step=on_step)
    except FloatingPointError as exc:  # run_loop advances ``state`` in place: it holds the steps done so far
        diverged = str(exc) or "the gradient became NaN/inf"
    finally:
        on_step.close()
    return _finish_saved(args, state, optimizer, on_step, ckpt_path, {"backend": args.backend}, diverged)
