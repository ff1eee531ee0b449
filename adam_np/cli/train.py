"""The ``adam-np train`` and ``adam-np plot`` sub-commands (registered by :mod:`adam_np.cli`)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any

__all__ = ["add_plot", "add_train", "run_plot", "run_train"]

OPTIMIZER_NAMES = ("adam", "sgd", "momentum", "adagrad", "rmsprop", "adadelta")
PROGRESS_DELAY_S = 2.0
"""The progress bar appears only once a run has lasted this long (tqdm's ``delay``)."""


def _number(kind: type, low: float, strict: bool, what: str):
    """An argparse ``type=`` that parses ``kind`` and checks ``value > low`` (or ``>=``)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        if value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


_positive_float = _number(float, 0.0, True, "a number > 0")
_nonneg_float = _number(float, 0.0, False, "a number >= 0")
_positive_int = _number(int, 0, True, "an integer >= 1")
_nonneg_int = _number(int, 0, False, "an integer >= 0")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", choices=("synthetic", "airfoil"), default="synthetic",
                   help="synthetic (offline default, 1500x5 with a known solution) or the UCI airfoil data "
                        "(path from --data-path, $ADAM_NP_AIRFOIL, the cache, or a download)")
    p.add_argument("--data-path", metavar="FILE", help="airfoil_self_noise.dat to use with --data airfoil")
    p.add_argument("--seed", type=_nonneg_int, default=None, help="seed of the run's random generator (default: fresh)")
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy", help="array library (default numpy)")


def add_train(subparsers: Any) -> None:
    """Register ``adam-np train``.

    Parameters
    ----------
    subparsers : argparse sub-parsers action
    """
    p = subparsers.add_parser(
        "train", help="run the D2L ch. 7.8 linear-regression experiment",
        description="Train D2L's linear regression with one of the chapter's optimizers and print "
                    "'loss: %%f, %%f sec per epoch' as the book does.")
    _add_data_args(p)
    p.add_argument("--optimizer", choices=OPTIMIZER_NAMES, default="adam", help="update rule (default adam)")
    p.add_argument("--lr", type=_positive_float, help="learning rate (default: the book's for the optimizer)")
    p.add_argument("--eps", type=_nonneg_float, help="epsilon (default: the book's for the optimizer)")
    p.add_argument("--epochs", type=_positive_int, default=2, help="number of epochs (default 2)")
    p.add_argument("--batch-size", type=_positive_int, default=10, help="mini-batch size (default 10)")
    p.add_argument("--plot", metavar="FILE.png", help="also save the loss curve to this PNG")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of the book's line")
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    g = p.add_argument_group("checkpoints", "interrupt and resume a run bit for bit")
    g.add_argument("--checkpoint", metavar="PATH", help="checkpoint file to write (default: the --resume file)")
    g.add_argument("--checkpoint-every", metavar="N", type=_positive_int,
                   help="write the checkpoint every N optimizer steps and at the end")
    g.add_argument("--resume", metavar="PATH", help="continue the run saved in this checkpoint (same flags)")
    g.add_argument("--max-steps", metavar="N", type=_positive_int,
                   help="stop after N optimizer steps in this invocation, with a checkpoint; continue with --resume "
                        "(reaching the run's last step finishes it as usual)")
    p.set_defaults(func=run_train, _parser=p)


def add_plot(subparsers: Any) -> None:
    """Register ``adam-np plot``.

    Parameters
    ----------
    subparsers : argparse sub-parsers action
    """
    p = subparsers.add_parser(
        "plot", help="save the chapter's figures as PNG",
        description="Save loss.png (all six optimizers), weights.png (bias correction) and "
                    "trajectories.png (2-D paths) into a folder.")
    _add_data_args(p)
    p.add_argument("--out", metavar="DIR", default=".", help="output folder (default: current)")
    p.set_defaults(func=run_plot, _parser=p)


def _nearest_existing(path: str) -> str:
    """``path`` or its nearest ancestor that exists (folders the plots create on the way are missing)."""
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def _check_output(parser: argparse.ArgumentParser, flag: str, path: str, *, is_dir: bool = False,
                  make_parents: bool = False, suffix: str | None = None) -> None:
    """A parser error naming ``flag`` unless ``path`` can be written (checked before any training)."""
    if suffix is not None and not path.lower().endswith(suffix):
        parser.error(f"argument {flag}: expected a file name ending in {suffix}, got {path!r}")
    if not is_dir and os.path.isdir(path):
        parser.error(f"argument {flag}: {path!r} is a directory, expected a file")
    if is_dir and os.path.exists(path) and not os.path.isdir(path):
        parser.error(f"argument {flag}: {path!r} is not a directory")
    parent = os.path.dirname(os.path.abspath(path))
    if make_parents:
        parent = _nearest_existing(parent)
    elif not os.path.exists(parent):
        parser.error(f"argument {flag}: the directory {parent!r} of {path!r} does not exist")
    if not os.path.isdir(parent):
        parser.error(f"argument {flag}: {parent!r} (on the way to {path!r}) is not a directory")


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    """Features and labels as the flags ask, or a parser error (exit 2) naming the flag."""
    from ..book.data import AirfoilError, get_data_ch7, make_synthetic
    from ..core._xp import namespace_for

    parser = args._parser
    try:
        xp = namespace_for(args.backend)
    except RuntimeError as exc:
        parser.error(f"argument --backend: {exc}")
    if args.data_path is not None and args.data != "airfoil":
        parser.error("argument --data-path: only used with --data airfoil")
    if args.data_path is not None and os.path.isdir(args.data_path):
        parser.error(f"argument --data-path: {args.data_path!r} is a directory, expected the airfoil data file")
    if args.data == "synthetic":
        data = make_synthetic(seed=0 if args.seed is None else args.seed, xp=xp)
        return data.features, data.labels
    try:
        return get_data_ch7(args.data_path, xp=xp, progressbar=not getattr(args, "quiet", False))
    except (AirfoilError, FileNotFoundError) as exc:
        parser.error(f"argument {'--data' if args.data_path is None else '--data-path'}: {exc}")


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


def run_train(args: argparse.Namespace) -> int:
    """Run ``adam-np train``; returns the exit status.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    int
    """
    from ..book.train import init_train, result_of
    from ..book.train import run_train as run_loop

    parser = args._parser
    ckpt_path = args.checkpoint or args.resume
    for flag in ("checkpoint_every", "max_steps"):
        if getattr(args, flag) is not None and ckpt_path is None:
            parser.error(f"argument --{flag.replace('_', '-')}: needs --checkpoint PATH (or --resume PATH)")
    if args.resume is not None and os.path.isdir(args.resume):
        parser.error(f"argument --resume: {args.resume!r} is a directory, expected a checkpoint file")
    if args.checkpoint is not None:
        _check_output(parser, "--checkpoint", args.checkpoint)
    if args.plot is not None:
        _check_output(parser, "--plot", args.plot, make_parents=True, suffix=".png")
    optimizer = _optimizer(args)
    features, labels = _load(args)
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
    batches = math.ceil(features.shape[0] / args.batch_size)
    total = args.epochs * batches
    progress = None if args.quiet else _Progress(total)
    if progress is not None:
        progress.bar.update(state.epoch * batches + state.batch)
    steps = 0

    def save() -> None:
        from ..book.resume import save_run

        save_run(ckpt_path, state, optimizer, features, labels, settings=settings)

    def on_step(s: Any) -> bool:
        nonlocal steps
        steps += 1
        if progress is not None:
            progress(s)
        if args.checkpoint_every is not None and steps % args.checkpoint_every == 0:
            save()
        last = s.epoch == args.epochs - 1 and s.batch == batches  # nothing left: let the loop finish the run
        return args.max_steps is not None and steps >= args.max_steps and not last

    try:
        state = run_loop(state, optimizer, features, labels, args.batch_size, args.epochs, on_step=on_step)
    except FloatingPointError:  # run_loop advances ``state`` in place: it holds the steps done so far
        parser.error(f"argument --lr: training diverged at step {state.epoch * batches + state.batch + 1} "
                     f"(the gradient became NaN/inf); try a smaller --lr")
    finally:
        if progress is not None:
            progress.close()
    finished = state.epoch >= args.epochs
    if ckpt_path is not None and (args.checkpoint_every is not None or args.max_steps is not None or finished):
        save()
    if not finished:
        print(f"stopped after {steps} steps (epoch {state.epoch}, batch {state.batch}); "
              f"continue with --resume {ckpt_path}", file=sys.stderr)
        return 0
    result = result_of(state, optimizer, args.epochs)
    if args.plot:
        from ..book.plot import plot_loss

        plot_loss(result, args.plot, title=f"{args.data}, {optimizer.name}")
    if args.json:
        out = result.to_dict()
        out.update(data=args.data, backend=args.backend, batch_size=args.batch_size, seed=args.seed,
                   hyperparams=optimizer.hyperparams())
        print(json.dumps(out))
    else:
        print(result.line())
    return 0


def run_plot(args: argparse.Namespace) -> int:
    """Run ``adam-np plot``; returns the exit status.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    int
    """
    from ..book.plot import make_figures

    _check_output(args._parser, "--out", args.out, is_dir=True, make_parents=True)
    features, labels = _load(args)
    start = time.perf_counter()
    paths = make_figures(args.out, features, labels, seed=0 if args.seed is None else args.seed)
    for path in paths:
        print(path)
    print(f"{len(paths)} figures in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0
