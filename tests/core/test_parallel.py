"""Parallel, asynchronous evaluation on Dask: real ``LocalCluster``s on loopback (worker processes,
one thread each, no dashboard), each closed by the end of its test.

Nothing here asserts a wall-clock time (a loaded two-core machine makes that flaky): the tests count
running trials, compare orders and configurations, and check that evaluation intervals overlap.
Worker processes are only ever killed by the PID their own cluster reports (``client.run(os.getpid)``),
in clusters these tests started.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
import torch
from distributed import Client, LocalCluster

from lla_studio.core.errors import ExecutorError, SessionError
from lla_studio.core.executors import DaskExecutor, open_executor
from lla_studio.core.session import load_session, loads_session, session_from_dict, session_to_dict
from lla_studio.core.specs import AcquisitionSpec, ExecutorSpec, LoopSettings, Trial
from lla_studio.core.study import (
    Study,
    StudyFinished,
    TrialCompleted,
    TrialFailed,
    TrialProposed,
    TrialStarted,
)

ROOT = Path(__file__).resolve().parents[2]
SESSIONS = ROOT / "resources" / "sessions"

OBJECTIVES = '''
import math, time

def _branin(config):
    x1, x2 = config["x1"], config["x2"]
    return (x2 - 5.1 / (4 * math.pi**2) * x1**2 + 5 / math.pi * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10

def sleepy(config):
    time.sleep(0.4)
    return _branin(config)

def slow(config):
    time.sleep(2.0)
    return _branin(config)

def hangs_left(config):
    time.sleep(120.0 if config["x1"] < 2.5 else 0.0)
    return _branin(config)
'''


@pytest.fixture
def objective_dir(tmp_path: Path) -> Path:
    (tmp_path / "objective.py").write_text(OBJECTIVES)
    return tmp_path


def _session(target: str | None = "sleepy", budget: int = 8, initial: int = 4, seed: int = 0, **loop) -> object:
    """The Branin session with a sleeping copy of Branin as a file objective, a cheap acquisition
    optimization and the loop settings given."""
    doc = json.loads((SESSIONS / "branin.json").read_text())
    if target is not None:
        doc["objective"] = {"type": "python", "target": f"objective.py:{target}", "direction": "minimize"}
    doc["acquisition"] = {"type": "logei", "num_restarts": 2, "raw_samples": 64}
    doc["loop"] = {"budget": budget, "initial_design": initial, "seed": seed, **loop}
    return session_from_dict(doc)


def _worker_processes() -> set[int]:
    """PIDs of this process's children, less the multiprocessing helpers that outlive any cluster."""
    return {
        p.pid for p in psutil.Process().children(recursive=True)
        if "resource_tracker" not in " ".join(p.cmdline()) and "semaphore_tracker" not in " ".join(p.cmdline())
    }


@pytest.fixture
def cluster() -> Iterator[tuple[LocalCluster, Client]]:
    """A cluster this test owns: two worker processes on loopback, closed at the end."""
    c = LocalCluster(host="127.0.0.1", processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None)
    client = Client(c, set_as_default=False)
    try:
        yield c, client
    finally:
        client.close()
        c.close()


def _intervals_overlap(a: Trial, b: Trial) -> bool:
    return a.started_at < b.finished_at and b.started_at < a.finished_at  # type: ignore[operator]


# --------------------------------------------------------------------------- the loop
def test_eight_sleeping_trials_run_two_at_a_time_on_a_local_cluster(objective_dir):
    before = _worker_processes()
    study = Study(_session(workers=2), base_dir=objective_dir)
    running: dict[int, dict] = {}
    most = 0
    proposed_while_running = []
    events = []
    for event in study.run():
        events.append(event)
        if isinstance(event, TrialProposed):
            proposed_while_running.append((dict(event.trial.config), [dict(c) for c in running.values()]))
        elif isinstance(event, TrialStarted):
            assert event.trial.status == "running" and event.trial.worker == event.worker
            running[event.trial.id] = event.trial.config
            most = max(most, len(running))
        elif isinstance(event, (TrialCompleted, TrialFailed)):
            del running[event.trial.id]
    assert isinstance(events[-1], StudyFinished) and events[-1].reason == "budget"
    assert most == 2  # never more than the two workers, and both were used at once
    trials = study.trials
    assert [t.status for t in trials] == ["completed"] * 8
    assert sorted(t.completed_order for t in trials) == list(range(8))
    assert len({t.worker for t in trials}) == 2
    # the evaluations overlapped in time: some pair of trials ran at the same moment
    assert any(_intervals_overlap(a, b) for i, a in enumerate(trials) for b in trials[i + 1:])
    # no proposal repeated a configuration that was running when it was made
    assert len(proposed_while_running) == 8
    assert all(config not in others for config, others in proposed_while_running)
    assert [t.source for t in trials] == ["initial"] * 4 + ["model"] * 4
    # the local cluster was closed with the run: its worker processes are gone
    assert _worker_processes() <= before
    # the completion order and the workers are in the session, and read back
    again = loads_session(json.dumps(session_to_dict(study.session)))
    assert [(t.completed_order, t.worker, t.started_at, t.finished_at) for t in again.trials] == [
        (t.completed_order, t.worker, t.started_at, t.finished_at) for t in trials
    ]


def test_the_same_completion_order_gives_the_same_proposals(objective_dir):
    session = _session(workers=2, budget=8, initial=3)
    study = Study(session, base_dir=objective_dir)
    list(study.run())
    recorded = {t.id: t for t in study.trials}
    assert all(t.status == "completed" for t in recorded.values())
    # replay the run in this process through ask / start / tell, in the recorded completion
    # order: one proposal for each of the two workers, then one after every finished trial
    replay = Study(session, base_dir=objective_dir)
    proposed = []
    for _ in range(2):
        (t,) = replay.suggest(1)
        replay.start(t.id)
        proposed.append(t)
    for done in sorted(recorded.values(), key=lambda t: t.completed_order):
        replay.tell(done.id, done.value)
        if len(replay.trials) < 8:
            (t,) = replay.suggest(1)
            replay.start(t.id)
            proposed.append(t)
    assert [(t.id, t.source, dict(t.config)) for t in proposed] == [
        (t.id, t.source, dict(t.config)) for t in sorted(recorded.values(), key=lambda t: t.id)
    ]


def test_one_worker_on_dask_reproduces_the_sequential_trials():
    # Branin itself (a benchmark, evaluated on the worker), as the sequential loop's tests run it
    sequential = Study(_session(target=None, budget=9, initial=5, seed=1))
    list(sequential.run())
    parallel = Study(_session(target=None, budget=9, initial=5, seed=1, executor={"type": "dask"}))
    events = list(parallel.run())
    assert sum(isinstance(e, TrialStarted) for e in events) == 9
    key = [(t.id, t.status, t.source, dict(t.config), t.value) for t in sequential.trials]
    assert [(t.id, t.status, t.source, dict(t.config), t.value) for t in parallel.trials] == key
    assert [t.completed_order for t in parallel.trials] == list(range(9))
    # the sequential loop records none of the parallel fields, so its sessions stay as they were
    assert all(t.worker is None and t.completed_order is None for t in sequential.trials)


def test_running_configurations_are_pending_points_of_the_next_proposal():
    # a 1-D integer space has few candidates: without pending points the proposal after a trial
    # started at the acquisition's maximum is that same configuration again
    doc = {
        "format": "lla-studio-session", "version": 1,
        "search_space": {"parameters": [{"name": "n", "type": "integer", "low": 0, "high": 20}]},
        "objective": {"type": "manual"},
        "acquisition": {"type": "logei", "num_restarts": 4, "raw_samples": 128},
        "loop": {"budget": 20, "initial_design": 4, "seed": 0},
        "trials": [
            {"id": i, "status": "completed", "config": {"n": n}, "value": float((n - 13) ** 2), "source": "initial"}
            for i, n in enumerate([0, 5, 10, 20])
        ],
    }
    torch.manual_seed(0)
    first = Study(session_from_dict(doc)).suggest(1)[0].config["n"]
    # the control: the same configuration, only proposed (not running), is proposed again
    idle = Study(session_from_dict(doc))
    idle.add({"n": first})
    assert idle.suggest(1)[0].config["n"] == first
    busy = Study(session_from_dict(doc))
    busy.start(busy.add({"n": first}).id, worker="tcp://127.0.0.1:1")
    second = busy.suggest(1)[0]
    assert second.config["n"] != first
    assert busy.trial(4).status == "running"


def test_pending_points_turn_analytic_acquisitions_into_their_monte_carlo_forms():
    from botorch.acquisition import (
        ExpectedImprovement,
        LogExpectedImprovement,
        ProbabilityOfImprovement,
        UpperConfidenceBound,
        qExpectedImprovement,
        qLogExpectedImprovement,
        qLogNoisyExpectedImprovement,
        qProbabilityOfImprovement,
        qUpperConfidenceBound,
    )

    from lla_studio.core.acquisition import build_acquisition

    study = Study(_session(target=None, budget=9, initial=5))
    for t in study.suggest(5):
        study.tell(t.id, study.objective(t.config))
    model = study.fit_surrogate().model
    U, Y = study.training_data()
    pending = torch.tensor([[0.5, 0.5], [0.25, 0.75]], dtype=torch.float64)
    for kind, analytic, mc in [
        ("logei", LogExpectedImprovement, qLogExpectedImprovement),
        ("ei", ExpectedImprovement, qExpectedImprovement),
        ("pi", ProbabilityOfImprovement, qProbabilityOfImprovement),
        ("ucb", UpperConfidenceBound, qUpperConfidenceBound),
    ]:
        spec = AcquisitionSpec(type=kind)
        assert type(build_acquisition(spec, model, U, Y, True)) is analytic
        assert type(build_acquisition(spec, model, U, Y, True, pending=pending[:0])) is analytic
        acq = build_acquisition(spec, model, U, Y, True, pending=pending)
        assert type(acq) is mc and torch.equal(acq.X_pending, pending)
    # qLogNEI takes them too (BoTorch's incremental form folds them into its baseline)
    spec = AcquisitionSpec(type="qlognei")
    X = torch.rand(4, 1, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        without = build_acquisition(spec, model, U, Y, True)(X)
        with_pending = build_acquisition(spec, model, U, Y, True, pending=pending)(X)
    assert type(build_acquisition(spec, model, U, Y, True, pending=pending)) is qLogNoisyExpectedImprovement
    assert not torch.allclose(without, with_pending)


def test_pool_studies_never_propose_a_running_candidate():
    s = load_session(SESSIONS / "digits_search_gp.json")
    s = replace(s, loop=LoopSettings(budget=30, initial_design=10, seed=0), acquisition=AcquisitionSpec(num_restarts=2, raw_samples=64))
    study = Study(s)
    for t in study.suggest(10):
        study.tell(t.id, study.objective(t.config))
    probe = Study(study.session)
    (best,) = probe.suggest(1)
    # the same proposal, started (running): the next proposal is another image of the pool
    study_trial = study.add(best.config)
    study.start(study_trial.id)
    (after,) = study.suggest(1)
    assert dict(after.config) != dict(best.config)
    remaining = set(study.pool_remaining().tolist())
    assert len(remaining) == study.pool.values.shape[0] - 12


# --------------------------------------------------------------------------- faults
@pytest.mark.parametrize("retries", [0, 1])
def test_a_killed_worker_fails_its_trial_and_the_study_goes_on(objective_dir, cluster, retries):
    c, client = cluster
    session = _session("slow", budget=6, initial=6, workers=2, retries=retries,
                       executor={"type": "dask", "address": c.scheduler_address})
    study = Study(session, base_dir=objective_dir)
    pids = client.run(os.getpid)  # the worker processes this test's cluster started
    victim = None
    starts: dict[int, int] = {}
    for event in study.run():
        if isinstance(event, TrialStarted):
            starts[event.trial.id] = starts.get(event.trial.id, 0) + 1
            if event.trial.id == 2 and victim is None:
                victim = event.worker
                for _ in range(100):  # until the evaluation runs on that worker (its 2 s sleep)
                    if client.processing(workers=[victim]).get(victim):
                        break
                    time.sleep(0.05)
                os.kill(pids[victim], signal.SIGKILL)
    assert victim is not None
    killed = study.trial(2)
    assert study.n_evaluated() == 6
    if retries == 0:
        assert killed.status == "failed" and killed.message == "worker lost"
        assert [t.status for t in study.trials if t.id != 2] == ["completed"] * 5
        assert starts[2] == 1
    else:  # evaluated again (same id, same configuration) on a live worker
        assert killed.status == "completed" and killed.worker != victim
        assert [t.status for t in study.trials] == ["completed"] * 6
        assert starts[2] == 2
    assert sorted(t.completed_order for t in study.trials) == list(range(6))


def test_a_timeout_cancels_the_trial_and_frees_its_worker(objective_dir):
    doc = session_to_dict(_session("hangs_left", budget=4, initial=4, workers=2))
    doc["objective"]["timeout_s"] = 5
    session = session_from_dict(doc)
    design = session.search_space.sample(4, seed=0)
    left = {i for i, c in enumerate(design) if c["x1"] < 2.5}
    assert left and len(left) < 4  # the design has trials that hang and trials that return at once
    study = Study(session, base_dir=objective_dir)
    events = list(study.run())
    assert isinstance(events[-1], StudyFinished) and events[-1].reason == "budget"
    for t in study.trials:
        if t.id in left:
            assert t.status == "failed" and t.message == "objective timed out after 5 s"
        else:
            assert t.status == "completed"


def test_a_continued_session_evaluates_its_running_trials_again(objective_dir):
    first = Study(_session(workers=2, budget=5, initial=4), base_dir=objective_dir)
    list(first.run(budget=3))
    doc = session_to_dict(first.session)
    # what a run killed while trial 2 was running leaves: that trial saved as running
    t2 = next(t for t in doc["trials"] if t["id"] == 2)
    for key in ("value", "seconds", "finished_at", "completed_order", "metrics"):
        t2.pop(key, None)
    t2["status"] = "running"
    config = dict(t2["config"])
    resumed = Study(session_from_dict(doc), base_dir=objective_dir)
    events = list(resumed.run())
    starts = [e.trial.id for e in events if isinstance(e, TrialStarted)]
    assert starts[0] == 2  # re-queued first
    again = resumed.trial(2)
    assert again.status == "completed" and dict(again.config) == config
    assert len(resumed.trials) == 5 and resumed.n_evaluated() == 5
    assert [t.id for t in resumed.trials] == list(range(5))


def test_a_cancel_leaves_the_running_trials_proposed(objective_dir):
    study = Study(_session("slow", workers=2, budget=6, initial=6), base_dir=objective_dir)
    cancelled = threading.Event()
    events = []
    for event in study.run(cancel=cancelled.is_set):
        events.append(event)
        if isinstance(event, TrialStarted) and event.trial.id == 1:
            cancelled.set()
    assert isinstance(events[-1], StudyFinished) and events[-1].reason == "cancelled"
    assert [t.status for t in study.trials] == ["proposed", "proposed"]
    assert all(t.worker is None and t.started_at is None for t in study.trials)


# --------------------------------------------------------------------------- refused at start
def test_session_settings_are_checked_where_they_are_read():
    doc = session_to_dict(_session())
    for loop, match in [
        ({"workers": 0}, "loop.workers: must be >= 1, got 0"),
        ({"workers": 2, "batch_size": 3}, r"loop.batch_size: must be at most loop.workers \(2\)"),
        ({"executor": {"type": "dask", "address": "localhost"}}, "loop.executor.address: expected a Dask scheduler address"),
        ({"executor": {"type": "ray"}}, "loop.executor.type: unknown executor 'ray'"),
        ({"retries": -1}, "loop.retries: must be >= 0"),
    ]:
        bad = json.loads(json.dumps(doc))
        bad["loop"].update(loop)
        with pytest.raises(SessionError, match=match):
            session_from_dict(bad)
    # a batch as large as the workers is fine; one worker takes any batch (the sequential loop)
    ok = json.loads(json.dumps(doc))
    ok["loop"].update({"workers": 2, "batch_size": 2})
    session_from_dict(ok)
    ok["loop"].update({"workers": 1, "batch_size": 4})
    session_from_dict(ok)


def test_parallel_settings_round_trip_and_defaults_are_not_written():
    shipped = json.loads((SESSIONS / "branin.json").read_text())
    assert session_to_dict(session_from_dict(shipped))["loop"] == shipped["loop"]
    loop = LoopSettings(budget=10, initial_design=4, workers=3, executor=ExecutorSpec("dask", "tcp://10.0.0.5:8786"), retries=2)
    s = replace(session_from_dict(shipped), loop=loop, trials=(
        Trial(0, {"x1": 0.0, "x2": 1.0}, "completed", value=2.0, worker="tcp://127.0.0.1:4000", started_at=1.5e9,
              finished_at=1.5e9 + 2, completed_order=0),
        Trial(1, {"x1": 1.0, "x2": 1.0}, "running", worker="tcp://127.0.0.1:4001", started_at=1.5e9 + 1),
    ))
    back = loads_session(json.dumps(session_to_dict(s)))
    assert back.loop == loop and back.trials == s.trials
    with pytest.raises(SessionError, match="only finished trials have a completion order"):
        Trial(0, {"x1": 0.0, "x2": 1.0}, "running", completed_order=0)


def _free_port() -> int:
    """A loopback port where nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_addresses_without_a_scheduler_are_refused_naming_the_address(cluster):
    free = _free_port()
    with pytest.raises(ExecutorError, match=rf"Dask scheduler 'tcp://127.0.0.1:{free}': cannot connect"):
        open_executor(ExecutorSpec("dask", f"tcp://127.0.0.1:{free}"), 1, connect_timeout=1)
    # a server that accepts the connection and never answers as Dask would (a web server)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SilentHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        address = f"tcp://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(ExecutorError, match=rf"Dask scheduler '{address}': the server there accepted the connection but no Dask scheduler answered"):
            open_executor(ExecutorSpec("dask", address), 1, connect_timeout=1)
    finally:
        server.shutdown()
        server.server_close()
    # a Dask worker's address is not a scheduler's
    c, client = cluster
    worker = sorted(client.nthreads())[0]
    with pytest.raises(ExecutorError, match="is a Dask Worker, not a scheduler"):
        open_executor(ExecutorSpec("dask", worker), 1, connect_timeout=2)


class _SilentHandler:
    """A request handler that reads nothing and answers nothing until the client gives up."""

    def __init__(self, request, client_address, server) -> None:
        request.settimeout(10)
        try:
            request.recv(1)
            time.sleep(10)  # longer than the probe waits (a daemon thread: the server does not join it)
        except OSError:
            pass


def test_a_cluster_without_workers_is_refused():
    with LocalCluster(host="127.0.0.1", processes=True, n_workers=0, dashboard_address=None) as empty:
        with pytest.raises(ExecutorError, match=rf"'{empty.scheduler_address}': the cluster has no workers"):
            open_executor(ExecutorSpec("dask", empty.scheduler_address), 1, connect_timeout=1)


def test_an_objective_the_workers_cannot_import_stops_the_run_naming_the_worker(objective_dir):
    study = Study(_session(workers=2), base_dir=objective_dir)  # imported here ...
    (objective_dir / "objective.py").unlink()  # ... and gone when the workers build it
    with pytest.raises(ExecutorError, match=r"worker tcp://127\.0\.0\.1:\d+: the objective cannot be built there: .*no such file 'objective.py'"):
        list(study.run())
    assert [t.status for t in study.trials] == []


def test_a_python_function_cannot_be_sent_to_workers():
    study = Study(_session(target=None, workers=2), objective=lambda config: 1.0)
    with pytest.raises(ExecutorError, match="an objective given as a Python function or object cannot be sent"):
        list(study.run())


def test_an_executor_given_to_the_study_is_used_and_left_open(objective_dir, cluster):
    c, client = cluster
    with open_executor(ExecutorSpec("dask", c.scheduler_address), 2) as executor:
        assert isinstance(executor, DaskExecutor) and not executor.embedded
        study = Study(_session(budget=4, initial=4, workers=2), base_dir=objective_dir, executor=executor)
        list(study.run())
        assert not executor.closed and executor.workers()
        assert {t.worker for t in study.trials} <= set(client.nthreads())
    assert executor.closed
    assert [t.status for t in study.trials] == ["completed"] * 4


# --------------------------------------------------------------------------- command line, layering
def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lla_studio", *args], capture_output=True, text=True, timeout=600)


def test_cli_runs_on_workers_and_refuses_bad_input_in_one_line(objective_dir):
    session_path = objective_dir / "session.json"
    session_path.write_text(json.dumps(session_to_dict(_session(budget=6, initial=4))))
    out = objective_dir / "out"
    r = _cli("run", str(session_path), "--workers", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    # the progress lines count running and completed trials: the initial design fills both workers
    lines = [ln for ln in r.stderr.splitlines() if "running" in ln]  # progress goes to stderr
    assert any("0/6 done, 2 running" in ln and "started on tcp://127.0.0.1:" in ln for ln in lines), r.stderr
    assert "6/6 done, 0 running" in lines[-1], r.stderr
    saved = load_session(out / "session.json")
    assert saved.loop.workers == 2 and [t.status for t in saved.trials] == ["completed"] * 6
    assert sorted(t.completed_order for t in saved.trials) == list(range(6))
    assert json.loads((out / "summary.json").read_text())["workers"] == 2
    port = _free_port()
    for args, match in [
        (["--workers", "0"], "loop.workers: must be >= 1, got 0 (from --workers)"),
        (["--scheduler", "nowhere"], "loop.executor.address: expected a Dask scheduler address"),
        (["--scheduler", f"tcp://127.0.0.1:{port}"], f"Dask scheduler 'tcp://127.0.0.1:{port}': cannot connect"),
    ]:
        bad_out = objective_dir / "bad"
        r = _cli("run", str(session_path), *args, "--out", str(bad_out))
        assert r.returncode == 2
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lla-studio: error: ") and match in lines[0], r.stderr
        assert not bad_out.exists()  # refused before anything was created


def _default_sigint() -> None:  # pragma: no cover - runs in the child before exec
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_in_a_parallel_run_prints_one_line_and_keeps_the_finished_trials(objective_dir):
    """Ctrl-C as a terminal sends it, to the whole process group: the run and its local cluster's
    worker processes. The run saves (a trial that was running is proposed again) and says so in
    one line; the workers print nothing and are gone."""
    session_path = objective_dir / "session.json"
    session_path.write_text(json.dumps(session_to_dict(_session("sleepy", budget=40, initial=40))))
    out = objective_dir / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lla_studio", "run", str(session_path), "--workers", "2", "--out", str(out), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=_default_sigint,  # see test_bad_runs: a background shell may start us with SIGINT ignored
    )
    children: list[psutil.Process] = []
    try:
        guard = time.monotonic() + 300  # hang guard only
        done = 0
        while done < 3 and proc.poll() is None and time.monotonic() < guard:
            time.sleep(0.1)
            try:
                done = sum(t.status == "completed" for t in load_session(out / "session.json").trials)
            except Exception:  # not written yet
                done = 0
        assert done >= 3, proc.communicate(timeout=60)
        children = psutil.Process(proc.pid).children(recursive=True)
        os.killpg(proc.pid, signal.SIGINT)  # the group this test created
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    trials = load_session(out / "session.json").trials
    n = sum(t.status == "completed" for t in trials)
    assert stderr.strip().splitlines()[-1] == f"lla-studio: interrupted; {n} completed trials saved in {out / 'session.json'}"
    assert n >= 3 and {t.status for t in trials} <= {"completed", "proposed"}
    alive = psutil.wait_procs(children, timeout=30)[1]
    assert not alive, alive  # the local cluster's worker processes ended with the run


def test_the_model_layer_and_the_cli_load_no_dask():
    code = (
        "import sys\n"
        "import lla_studio.core.session, lla_studio.core.specs, lla_studio.core.study, lla_studio.cli\n"
        "s = lla_studio.core.session.load_session(sys.argv[1])\n"
        "bad = sorted(m for m in ('dask', 'distributed') if m in sys.modules)\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(SESSIONS / "branin.json")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
