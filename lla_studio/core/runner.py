"""Headless runs (``lla-studio run``) and kernel comparison by LOO-CV (``lla-studio cv``).

``run_headless`` writes into ``--out``:

* ``trials.csv`` -- ``trial,status,<parameters...>,value`` (empty cells for inactive parameters and
  missing values);
* ``summary.json`` -- ``best_value``, ``best_config``, ``n_completed``, ``n_failed``, ``seconds``;
* ``session.json`` -- the full session with its trials.

All three are written atomically when the run starts, after every finished (completed or failed)
trial and when it ends, so a run that is killed (even ``kill -9``) leaves files that hold every
finished trial, and ``lla-studio run DIR/session.json --out DIR`` continues it. A Ctrl-C (or a
``KeyboardInterrupt`` raised by the objective) saves them with the interrupted trial still proposed
and raises :class:`RunInterrupted`; the CLI prints its one line and exits with status 130.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from lla_studio.core.errors import LLAStudioError, SessionError, StudyError
from lla_studio.core.session import Session, load_session, save_session, write_text_atomic
from lla_studio.core.specs import ExecutorSpec
from lla_studio.core.trials_io import trials_csv

__all__ = ["RunInterrupted", "cross_validate_kernels", "ensure_out_dir", "run_headless"]


class RunInterrupted(KeyboardInterrupt):
    """A headless run stopped by Ctrl-C after saving its files; the message says what was kept."""


def ensure_out_dir(path: Path, label: str = "output folder") -> None:
    """Create the output folder ``path`` (and its parents) if missing.

    Raises:
        LLAStudioError: ``"LABEL 'PATH': exists and is not a folder"``, ``"...: cannot create the
            folder: REASON"`` or ``"...: the folder is not writable"``.
    """
    import os

    where = f"{label} {str(path)!r}"
    if path.exists() and not path.is_dir():
        raise LLAStudioError(f"{where}: exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LLAStudioError(f"{where}: cannot create the folder: {err.strerror or err}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise LLAStudioError(f"{where}: the folder is not writable")


class _Progress:
    """A one-line progress bar on a terminal; one line per trial otherwise."""

    def __init__(self, total: int, stream: TextIO, enabled: bool) -> None:
        self.total = total
        self.stream = stream
        self.enabled = enabled
        self.tty = enabled and stream.isatty()
        self.status = "starting"
        self.done = 0
        self.running: int | None = None  # shown once a trial ran on a worker (parallel runs)
        self.best = float("nan")

    def update(
        self,
        done: int | None = None,
        best: float | None = None,
        status: str | None = None,
        line: str | None = None,
        running: int | None = None,
    ) -> None:
        if not self.enabled:
            return
        if running is not None:
            self.running = running
        if done is not None:
            self.done = done
        if best is not None:
            self.best = best
        if status is not None:
            self.status = status
        width = 30
        filled = int(width * min(self.done, self.total) / max(self.total, 1))
        counts = f"{self.done}/{self.total}" if self.running is None else f"{self.done}/{self.total} done, {self.running} running"
        bar = f"[{'#' * filled}{'.' * (width - filled)}] {counts} best {self.best:.6g} | {self.status}"
        if self.tty:
            self.stream.write("\r\033[K" + bar)
            self.stream.flush()
        elif line is not None:
            self.stream.write(f"{bar} | {line}\n")
            self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def run_headless(
    session_path: Path,
    out_dir: Path,
    budget: int | None = None,
    seed: int | None = None,
    progress: bool = True,
    stream: TextIO | None = None,
    out_label: str = "output folder",
    workers: int | None = None,
    scheduler: str | None = None,
) -> int:
    """Run a session's study to its budget; see the module docstring for the files written.

    Args:
        workers: Trials at once (``--workers``; default: the session's ``loop.workers``, or with
            ``scheduler`` and a session that sets none, every worker thread of that cluster).
        scheduler: A Dask scheduler's address to evaluate on (``--scheduler``).

    Raises:
        RunInterrupted: on Ctrl-C, after saving (the message: how many completed trials, and where).
        LLAStudioError: a session that cannot run, or an output folder that cannot be written (named
            ``out_label`` in the message).
    """
    from lla_studio.core.objectives import make_objective
    from lla_studio.core.study import Study

    stream = stream if stream is not None else sys.stderr
    session = load_session(session_path)
    loop = session.loop
    given = {"--budget": budget, "--seed": seed, "--workers": workers, "--scheduler": scheduler}
    try:
        changes: dict[str, Any] = {"budget": budget, "seed": seed, "workers": workers}
        if scheduler is not None:
            changes["executor"] = ExecutorSpec("dask", scheduler)
        loop = replace(loop, **{k: v for k, v in changes.items() if v is not None})
    except SessionError as err:
        flags = "/".join(k for k, v in given.items() if v is not None)
        raise SessionError(f"{err.reason} (from {flags})", err.path) from None
    session = replace(session, loop=loop)
    if session.objective.type == "manual":
        raise StudyError("this session's objective is manual: values come from the user, so it cannot run headless")
    base_dir = Path(session_path).resolve().parent
    objective = make_objective(session.objective, base_dir)  # an objective that does not import: before any cluster starts
    executor = None
    if loop.parallel:
        from lla_studio.core.executors import open_executor

        executor = open_executor(loop.executor, loop.workers)
        if scheduler is not None and workers is None and loop.workers == 1:
            try:  # as many trials at once as the cluster has worker threads
                loop = replace(loop, workers=max(1, sum(executor.workers().values())))
            except BaseException:
                executor.close()
                raise
            session = replace(session, loop=loop)
    try:
        study = Study(session, objective=objective, base_dir=base_dir, executor=executor)
        return _run_study(study, out_dir, out_label, loop, stream, progress)
    finally:
        if executor is not None:
            executor.close()


def _run_study(study: Any, out_dir: Path, out_label: str, loop: Any, stream: TextIO, progress: bool) -> int:
    """The body of :func:`run_headless` once the study (and its executor) exist."""
    from lla_studio.core import study_events as ev

    ensure_out_dir(out_dir, out_label)
    start = time.perf_counter()
    summary = _save_outputs(study, out_dir, start)
    bar = _Progress(loop.budget, stream, progress)
    bar.update(done=study.n_evaluated(), best=study.best_value(), status="initial design", line="start")
    finished: ev.StudyFinished | None = None
    try:
        for event in study.run():
            if isinstance(event, ev.SurrogateFitted):
                bar.update(status=f"fitted {event.kind} on {event.n_train} points in {event.seconds:.2f} s")
            elif isinstance(event, ev.SurrogateFitFailed):
                bar.update(status="fit failed; space-filling proposal", line=f"surrogate fit failed: {event.reason}")
            elif isinstance(event, ev.AcquisitionOptimized):
                bar.update(status=f"{event.kind} optimized in {event.seconds:.2f} s")
            elif isinstance(event, ev.TrialProposed):
                bar.update(status=f"evaluating trial {event.trial.id}")
            elif isinstance(event, ev.TrialStarted):
                bar.update(
                    status=f"trial {event.trial.id} on {event.worker}", running=len(study.running()),
                    line=f"trial {event.trial.id} started on {event.worker}",
                )
            elif isinstance(event, (ev.TrialCompleted, ev.TrialFailed)):
                summary = _save_outputs(study, out_dir, start)
                t = event.trial
                what = f"trial {t.id} = {t.value:.6g}" if t.status == "completed" else f"trial {t.id} failed: {t.message}"
                running = len(study.running()) if bar.running is not None else None
                bar.update(done=study.n_evaluated(), best=study.best_value(), line=what, running=running)
            elif isinstance(event, ev.StudyFinished):
                finished = event
    except KeyboardInterrupt:
        bar.close()
        _save_outputs(study, out_dir, start)
        n = len(study.completed())
        raise RunInterrupted(
            f"{n} completed trial{'' if n == 1 else 's'} saved in {out_dir / 'session.json'}"
        ) from None
    except BaseException:
        bar.close()
        _save_outputs(study, out_dir, start)  # what finished is kept, whatever stopped the run
        raise
    bar.close()
    summary = _save_outputs(study, out_dir, start)
    if progress and finished is not None:
        stream.write(
            f"done ({finished.reason}): {summary['n_completed']} completed, {summary['n_failed']} failed, "
            f"best {summary['best_value']} in {summary['seconds']:.1f} s -> {out_dir}\n"
        )
    return 0


def _save_outputs(study: Any, out_dir: Path, start: float) -> dict[str, Any]:
    """Write ``session.json``, ``trials.csv`` and ``summary.json`` (each atomically); returns the summary."""
    final = study.session
    loop = final.loop
    save_session(final, out_dir / "session.json")
    write_text_atomic(out_dir / "trials.csv", trials_csv(final))
    best = study.best()
    summary: dict[str, Any] = {
        "best_value": None if best is None else best.value,
        "best_config": None if best is None else dict(best.config),
        "n_completed": len(study.completed()),
        "n_failed": sum(1 for t in final.trials if t.status == "failed"),
        "seconds": time.perf_counter() - start,
        "budget": loop.budget,
        "seed": loop.seed,
    }
    if loop.parallel:  # a sequential run's summary stays as it was
        summary["workers"] = loop.workers
    if study.objective.benchmark is not None and best is not None:
        summary["regret"] = study.objective.benchmark.regret(float(best.value))  # type: ignore[arg-type]
    write_text_atomic(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def cross_validate_kernels(
    session_path: Path, kernel_texts: Sequence[str], refit: bool = False, lla: bool = False
) -> str:
    """LOO-CV table of the session's kernel, each kernel given in text form and, when the session's
    surrogate is an LLA or ``lla`` is set, the LLA (the session's network, else the default one)."""
    from lla_studio.core.errors import KernelGraphError
    from lla_studio.core.kernels import default_kernel, format_kernel, parse_kernel

    # the inputs are checked before torch and gpytorch are imported (gpytorch's import warns on
    # stderr), so a refused --kernel is one line
    session = load_session(session_path)
    names = session.features.feature_names
    graphs = [("session", session.kernel if session.kernel is not None else default_kernel(names))]
    for i, text in enumerate(kernel_texts):
        try:
            g = parse_kernel(text)
            g.validate(names)
        except KernelGraphError as err:
            raise KernelGraphError(f"--kernel #{i + 1}: {err}") from None
        except RecursionError:  # a safety net: the parser refuses deep nesting itself
            raise KernelGraphError(f"--kernel #{i + 1}: the kernel is nested too deeply") from None
        graphs.append((f"--kernel #{i + 1}", g))
    n_completed = sum(1 for t in session.trials if t.status == "completed")
    if n_completed < 3:
        raise StudyError(f"cross-validation needs at least 3 completed trials, the session has {n_completed}")
    import torch

    from lla_studio.core.diagnostics import loo_closed_form, loo_refit
    from lla_studio.core.surrogates.gp import fit_gp

    study = _offline_study(session)
    U, Y = study.training_data()
    fmap = study.feature_map
    rows = []
    for label, graph in graphs:
        torch.manual_seed(session.loop.seed)
        fit = fit_gp(U, Y, fmap, graph)
        res = loo_closed_form(fit.model)
        row = [label, f"{res.mlpd:.4f}", f"{res.rmse:.4g}", f"{res.coverage95:.2f}", f"{fit.mll * U.shape[0]:.3f}"]
        if refit:
            r2 = loo_refit(lambda u, y: fit_gp(u, y, fmap, graph).model, U, Y)
            row += [f"{r2.mlpd:.4f}", f"{r2.rmse:.4g}", f"{r2.coverage95:.2f}"]
        rows.append((row, format_kernel(graph)))
    if lla or session.surrogate.type == "lla":
        rows.append(_cv_lla(session, U, Y, refit))
    header = ["kernel", "LOO MLPD", "LOO RMSE", "95% cover", "log ML"]
    if refit:
        header += ["refit MLPD", "refit RMSE", "refit cover"]
    widths = [max(len(header[j]), *(len(r[0][j]) for r in rows)) for j in range(len(header))]
    lines = [f"{U.shape[0]} completed trials, {len(names)} features; higher MLPD is better"]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for row, _ in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    lines.append("")
    for (row, text) in rows:
        lines.append(f"{row[0]}: {text}")
    lines.append("")
    lines.append(
        "log ML: on standardized targets; a GP row is BoTorch's marginal log likelihood with its "
        "hyperprior terms, the LLA row the Laplace evidence at the tuned (delta, sigma)."
    )
    return "\n".join(lines)


def _offline_study(session: Session) -> Any:
    """A study on the session's trials that never evaluates anything (its objective made manual)."""
    from lla_studio.core.study import Study

    return Study(replace(session, objective=replace(session.objective, type="manual", name=None, target=None)))


def _cv_lla(session: Session, U: Any, Y: Any, refit: bool) -> tuple[list[str], str]:
    """The LLA row of :func:`cross_validate_kernels` and its description."""
    from lla_studio.core.diagnostics import loo_linearized, loo_refit
    from lla_studio.core.specs import SurrogateSpec
    from lla_studio.core.surrogates.lla_fit import fit_lla_once, lla_options

    if session.surrogate.type != "lla":
        session = replace(session, surrogate=SurrogateSpec("lla", {}))
    model = fit_lla_once(session, U, Y)
    res = loo_linearized(model)
    # the evidence on standardized targets, the scale of the GP rows (the LLA standardizes by std(y))
    evidence = model.report.log_marginal_likelihood_original + Y.shape[0] * math.log(float(Y.std()))
    row = ["LLA", f"{res.mlpd:.4f}", f"{res.rmse:.4g}", f"{res.coverage95:.2f}", f"{evidence:.3f}"]
    if refit:
        def fit_fold(u: Any, y: Any) -> Any:
            # from scratch (no previous network): warm weights would have seen the held-out point
            return fit_lla_once(session, u, y)

        r2 = loo_refit(fit_fold, U, Y)
        row += [f"{r2.mlpd:.4f}", f"{r2.rmse:.4g}", f"{r2.coverage95:.2f}"]
    network, settings = lla_options(session.surrogate.options)
    where = "last layer" if settings.subset_of_weights == "last_layer" else "all weights"
    return row, f"{network} (Laplace over {where}; tuning {settings.tuning})"
