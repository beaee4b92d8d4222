"""Trials carry named extra metrics: from the objective through the study, the session and trials CSV."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from lla_studio.core.errors import ObjectiveError, SessionError
from lla_studio.core.objectives import make_objective
from lla_studio.core.session import dumps_session, load_session, loads_session, session_from_dict, session_to_dict
from lla_studio.core.specs import ObjectiveSpec, Trial
from lla_studio.core.study import Study
from lla_studio.core.trials_io import parse_trial_rows, parse_trials_csv, trials_csv

SESSIONS = Path(__file__).resolve().parents[2] / "resources" / "sessions"


def _branin_with_metrics(tmp_path):
    """A python objective returning ``{"value", "metrics"}``: Branin and two extra numbers."""
    (tmp_path / "obj.py").write_text(
        "import math\n"
        "def f(c):\n"
        "    x1, x2 = c['x1'], c['x2']\n"
        "    b, cc, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)\n"
        "    v = (x2 - b * x1**2 + cc * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10\n"
        "    return {'value': v, 'metrics': {'x_sum': x1 + x2, 'half': v / 2}}\n"
    )
    session = load_session(SESSIONS / "branin.json")
    spec = ObjectiveSpec(type="python", target=str(tmp_path / "obj.py") + ":f")
    return replace(session, objective=spec, loop=replace(session.loop, budget=9))


def test_metrics_flow_from_the_objective_into_the_session_and_back(tmp_path):
    session = _branin_with_metrics(tmp_path)
    study = Study(session, base_dir=tmp_path)
    list(study.run(budget=3))
    done = [t for t in study.session.trials if t.status == "completed"]
    assert len(done) == 3
    for t in done:
        assert set(t.metrics) == {"x_sum", "half"}
        assert t.metrics["x_sum"] == pytest.approx(t.config["x1"] + t.config["x2"])
        assert t.metrics["half"] == pytest.approx(t.value / 2)
    again = loads_session(dumps_session(study.session))
    assert [dict(t.metrics) for t in again.trials] == [dict(t.metrics) for t in study.session.trials]
    doc = session_to_dict(study.session)
    assert doc["trials"][0]["metrics"] == dict(done[0].metrics)


def test_metrics_round_trip_through_trials_csv(tmp_path):
    session = _branin_with_metrics(tmp_path)
    study = Study(session, base_dir=tmp_path)
    list(study.run(budget=3))
    text = trials_csv(study.session)
    header = text.splitlines()[0].split(",")
    assert header[-3:] == ["value", "metric.x_sum", "metric.half"]
    rows = parse_trial_rows(text, session.search_space)
    assert [(c, v, m) for c, v, m in rows] == [(dict(t.config), t.value, dict(t.metrics)) for t in study.session.trials]
    assert parse_trials_csv(text, session.search_space) == [(c, v) for c, v, _ in rows]
    bad = text.splitlines()
    bad[1] = ",".join(bad[1].split(",")[:-1] + ["lots"])
    with pytest.raises(Exception, match=r"row 2, column 'metric.half': 'lots' is not a number"):
        parse_trial_rows("\n".join(bad), session.search_space)


def test_bad_metrics_are_refused_naming_them(tmp_path):
    with pytest.raises(SessionError, match=r"trials\[0\]\.metrics\.acc: must be a finite number"):
        session_from_dict(json.loads(json.dumps(session_to_dict(load_session(SESSIONS / "branin.json")))) | {
            "trials": [{"id": 0, "status": "completed", "config": {"x1": 0.0, "x2": 0.0}, "value": 1.0,
                        "metrics": {"acc": "high"}}]})
    with pytest.raises(SessionError, match=r"metrics.flag: must be a finite number, got True"):
        Trial(id=0, config={}, status="completed", value=1.0, metrics={"flag": True})
    objective = make_objective(ObjectiveSpec(type="python", target="json:loads"))
    objective._fn = lambda c: {"value": 1.0, "metrics": {"m": float("nan")}}
    with pytest.raises(ObjectiveError, match=r"metric 'm': objective returned nan"):
        objective.evaluate({})
    objective._fn = lambda c: {"valu": 1.0}
    with pytest.raises(ObjectiveError, match="a mapping without 'value'"):
        objective.evaluate({})
    objective._fn = lambda c: {"value": 1.0, "metrix": {}}
    with pytest.raises(ObjectiveError, match=r"unknown key\(s\) \['metrix'\]"):
        objective.evaluate({})
