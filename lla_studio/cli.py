"""Command line: ``lla-studio`` (the studio window) and ``lla-studio COMMAND ...`` (headless).

Headless commands never import Qt. Errors in user input (a malformed session, a bad option, an
``--out`` that is a file or cannot be written) print one line ``lla-studio: error: ...`` to stderr and
exit with status 2, without a traceback; so does a file that cannot be read or written mid-command
(the message names it). Ctrl-C prints one line ``lla-studio: interrupted`` (for ``run``: how many
completed trials were saved, and where) and exits with status 130. Every input a command can check is
checked before it creates anything.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path

from lla_studio import __version__
from lla_studio.core.errors import LLAStudioError

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a process ended by Ctrl-C


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lla-studio",
        description="Hands-on Bayesian optimization and Laplace approximations. "
        "Without a command: open the studio window.",
    )
    parser.add_argument("--version", action="version", version=f"lla-studio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("validate", help="check a session file and print a one-line summary")
    p.add_argument("session", type=Path, help="session JSON file")

    p = sub.add_parser("sample", help="print N valid configurations of a session's search space as CSV")
    p.add_argument("session", type=Path, help="session JSON file")
    p.add_argument("-n", type=int, default=10, help="number of configurations (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--method", choices=["sobol", "uniform"], default="sobol", help="sampling method (default sobol)")

    p = sub.add_parser("run", help="run a study headless and write trials.csv, summary.json and session.json")
    p.add_argument("session", type=Path, help="session JSON file (a DIR/session.json continues that run)")
    p.add_argument("--budget", type=int, default=None, help="total evaluations (default: the session's)")
    p.add_argument("--seed", type=int, default=None, help="seed (default: the session's)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="evaluate N trials at once on Dask workers (default: the session's loop.workers, 1; "
                        "N > 1 without --scheduler starts a local cluster of N processes)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="evaluate on the Dask cluster of this scheduler (e.g. tcp://10.0.0.5:8786); without "
                        "--workers, as many trials at once as it has worker threads")

    p = sub.add_parser("cv", help="leave-one-out cross-validation of the surrogate on the session's trials")
    p.add_argument("session", type=Path, help="session JSON file with completed trials")
    p.add_argument("--kernel", action="append", default=[], metavar="TEXT",
                   help="a kernel graph in text form to compare (repeatable); the session's kernel is always row 1")
    p.add_argument("--refit", action="store_true", help="also refit hyperparameters for every fold (n fits)")
    p.add_argument("--lla", action="store_true",
                   help="add the linearized Laplace surrogate (the session's network, else the default MLP); "
                        "automatic when the session's surrogate is an LLA")

    p = sub.add_parser("posterior", help="Laplace vs exact grid posterior of a 2-D model: summary.json + overlay.png")
    p.add_argument("model", help="bioassay, bioassay-logbeta, shear-frame, banana or mixture")
    p.add_argument("--grid", type=int, default=201, help="grid points per axis (default 201)")
    p.add_argument("--starts", type=int, default=16, help="multi-start optimizations for the Laplace mixture (default 16)")
    p.add_argument("--vi", action="store_true", help="refine the mixture by Gaussian-mixture VI")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    return parser


def _cmd_validate(args: argparse.Namespace) -> int:
    from lla_studio.core.session import load_session

    session = load_session(args.session)
    print(f"ok: {session.summary()}")
    return EXIT_OK


def _cmd_sample(args: argparse.Namespace) -> int:
    from lla_studio.core.trials_io import format_cell
    from lla_studio.core.session import load_session

    if args.n < 0:
        raise LLAStudioError(f"-n must be >= 0, got {args.n}")
    if args.seed < 0:
        raise LLAStudioError(f"--seed must be >= 0, got {args.seed}")
    session = load_session(args.session)
    space = session.search_space
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(space.names)
    for config in space.sample(args.n, seed=args.seed, method=args.method):
        writer.writerow([format_cell(config.get(name)) for name in space.names])
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from lla_studio.core.process import keep_freed_memory
    from lla_studio.core.runner import run_headless

    keep_freed_memory()
    return run_headless(
        args.session, args.out, budget=args.budget, seed=args.seed, progress=not args.quiet, out_label="--out",
        workers=args.workers, scheduler=args.scheduler,
    )


def _cmd_cv(args: argparse.Namespace) -> int:
    from lla_studio.core.process import keep_freed_memory
    from lla_studio.core.runner import cross_validate_kernels

    keep_freed_memory()
    table = cross_validate_kernels(args.session, args.kernel, refit=args.refit, lla=args.lla)
    print(table)
    return EXIT_OK


def _cmd_posterior(args: argparse.Namespace) -> int:
    from lla_studio.core.posterior.grid import grid_shape
    from lla_studio.core.posterior.registry import default_spec
    from lla_studio.core.posterior.report import run_posterior_report
    from lla_studio.core.runner import ensure_out_dir

    default_spec(args.model)  # an unknown name is refused before the folder is created
    grid_shape(args.grid)
    if args.starts < 1:
        raise LLAStudioError(f"--starts must be >= 1, got {args.starts}")
    ensure_out_dir(args.out, "--out")
    summary = run_posterior_report(
        args.model, grid=args.grid, starts=args.starts, vi=args.vi, seed=args.seed, out_dir=args.out
    )
    jsd = summary.get("jsd", {})
    parts = ", ".join(f"{k} {v:.4g}" for k, v in jsd.items() if isinstance(v, (int, float)))
    print(f"{args.model}: {len(summary['laplace'])} Laplace component(s); JSD to grid: {parts} -> {args.out}")
    return EXIT_OK


_COMMANDS = {"validate": _cmd_validate, "sample": _cmd_sample, "run": _cmd_run, "cv": _cmd_cv, "posterior": _cmd_posterior}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lla-studio`` console script and ``python -m lla_studio``."""
    parser = _build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (len(argv) == 1 and not argv[0].startswith("-") and argv[0] not in _COMMANDS):
        # bare `lla-studio` or `lla-studio SESSION.json`: the studio window. The window's process never
        # imports torch (the study and the labs compute in their own processes).
        from lla_studio.gui.app import run_app

        return run_app(Path(argv[0]) if argv else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    try:
        return _COMMANDS[args.command](args)
    except LLAStudioError as err:
        print(f"lla-studio: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `lla-studio sample ... | head`
        return EXIT_OK
    except KeyboardInterrupt as err:  # Ctrl-C; `run` saved its files first and says so
        print(f"lla-studio: interrupted{f'; {err}' if str(err) else ''}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as err:  # a file that cannot be read or written (a full disk, a folder made read-only)
        print(f"lla-studio: error: {_os_error(err)}", file=sys.stderr)
        return EXIT_USAGE


def _os_error(err: OSError) -> str:
    """``REASON: 'PATH'`` of an ``OSError`` (both paths of a failed rename)."""
    reason = err.strerror or str(err) or type(err).__name__
    paths = [str(f) for f in (err.filename, err.filename2) if f is not None]
    return f"{reason}: {' -> '.join(repr(p) for p in paths)}" if paths else reason


if __name__ == "__main__":
    sys.exit(main())
