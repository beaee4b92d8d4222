"""Trials CSV round trip and errors that name the cell."""

from __future__ import annotations

from pathlib import Path

import pytest

from lla_studio.core.errors import StudyError
from lla_studio.core.session import load_session
from lla_studio.core.specs import Trial
from lla_studio.core.trials_io import parse_trials_csv, trials_csv

SESSIONS = Path(__file__).resolve().parents[2] / "resources" / "sessions"


def test_round_trip_through_csv_keeps_configs_and_values():
    session = load_session(SESSIONS / "cnn_hyperparameters.json")
    configs = session.search_space.sample(6, seed=3)
    trials = [Trial(i, c, "completed", value=float(i) / 3) for i, c in enumerate(configs[:4])]
    trials.append(Trial(4, configs[4], "failed", message="boom"))
    trials.append(Trial(5, configs[5], "proposed"))
    text = trials_csv(session.with_trials(tuple(trials)))
    rows = parse_trials_csv(text, session.search_space)
    assert len(rows) == 5  # the failed one is skipped
    for (config, value), t in zip(rows, [t for t in trials if t.status != "failed"]):
        assert config == dict(t.config)
        assert value == t.value


@pytest.mark.parametrize(
    "text, match",
    [
        ("x1,value\n1,2\n", r"missing column\(s\) \['x2'\]"),
        ("x1,x2,colour\n1,2,red\n", r"unknown column\(s\) \['colour'\]"),
        ("x1,x2,value\n1,abc,3\n", r"row 2, column 'x2': 'abc' is not a number"),
        ("x1,x2,value\n1,2,3\n99,2,1\n", r"row 3: invalid configuration: parameter 'x1': value 99 is outside"),
        ("x1,x2,value\n1,2,nan\n", r"row 2, column 'value': nan is not finite"),
        ("x1,x2,value\n1,2\n", r"row 2: 2 cells, the header has 3"),
        ("", r"trials CSV is empty"),
    ],
)
def test_bad_csv_names_the_cell(text, match):
    space = load_session(SESSIONS / "branin.json").search_space
    with pytest.raises(StudyError, match=match):
        parse_trials_csv(text, space)


def test_a_huge_cell_is_an_error_naming_the_row():
    space = load_session(SESSIONS / "branin.json").search_space
    text = "x1,x2,value\n1,2,3\n1,2," + "9" * 200_000 + "\n"
    with pytest.raises(StudyError, match=r"^trials CSV row 3: a cell is longer than 131072 characters$"):
        parse_trials_csv(text, space)


def test_excel_utf8_bom_is_accepted():
    space = load_session(SESSIONS / "branin.json").search_space
    text = "trial,x1,x2,value\n0,1,2,3\n"
    expected = [({"x1": 1.0, "x2": 2.0}, 3.0)]
    # the GUI reads files as utf-8 text: the BOM arrives as U+FEFF; bytes are decoded as utf-8-sig
    assert parse_trials_csv("\ufeff" + text, space) == expected
    assert parse_trials_csv(b"\xef\xbb\xbf" + text.encode(), space) == expected
    with pytest.raises(StudyError, match=r"^trials CSV: not UTF-8 text \(byte 0xff at offset 0\)$"):
        parse_trials_csv(b"\xff" + text.encode(), space)
