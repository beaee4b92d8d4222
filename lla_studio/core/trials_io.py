"""Trials as CSV: the ``trial,status,<parameters...>,value`` table of ``lla-studio run``, read back.

Reading is strict: every problem names its row and column, so a user importing measurements from a
spreadsheet learns exactly which cell to fix.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from lla_studio.core.errors import SearchSpaceError, StudyError
from lla_studio.core.runner import trials_csv
from lla_studio.core.space import ChoiceParameter, IntegerParameter, RealParameter, SearchSpace

__all__ = ["parse_trials_csv", "trials_csv"]


def _parse_cell(space: SearchSpace, name: str, text: str, where: str) -> Any:
    p = space[name]
    text = text.strip()
    if text == "":
        return None
    if isinstance(p, RealParameter):
        try:
            return float(text)
        except ValueError:
            raise StudyError(f"{where}: {text!r} is not a number") from None
    if isinstance(p, IntegerParameter):
        try:
            v = float(text)
        except ValueError:
            raise StudyError(f"{where}: {text!r} is not an integer") from None
        if not v.is_integer():
            raise StudyError(f"{where}: {text!r} is not an integer")
        return int(v)
    assert isinstance(p, ChoiceParameter)
    for c in p.choices:
        shown = ("true" if c else "false") if isinstance(c, bool) else str(c)
        if text == shown or (not isinstance(c, (bool, str)) and _same_number(text, c)):
            return c
    raise StudyError(f"{where}: {text!r} is not one of the choices {list(p.choices)!r}")


def _same_number(text: str, c: Any) -> bool:
    try:
        return float(text) == float(c)
    except ValueError:
        return False


def parse_trials_csv(text: str, space: SearchSpace) -> list[tuple[dict[str, Any], float | None]]:
    """Read ``(configuration, value)`` pairs from CSV text.

    Columns are matched by header name; ``trial`` and ``status`` are optional, every parameter column
    is required, ``value`` is optional (empty = no measurement yet). Rows whose status is ``failed``
    or ``rejected`` are skipped.

    Raises:
        StudyError: naming the row (1-based, header = row 1) and column of the first bad cell.
    """
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise StudyError("trials CSV is empty") from None
    missing = [n for n in space.names if n not in header]
    if missing:
        raise StudyError(f"trials CSV: missing column(s) {missing} (header: {header})")
    unknown = [h for h in header if h not in space.names and h not in ("trial", "status", "value", "message", "source")]
    if unknown:
        raise StudyError(f"trials CSV: unknown column(s) {unknown}")
    col = {h: i for i, h in enumerate(header)}
    out: list[tuple[dict[str, Any], float | None]] = []
    for r, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise StudyError(f"trials CSV row {r}: {len(row)} cells, the header has {len(header)}")
        status = row[col["status"]].strip() if "status" in col else "completed"
        if status in ("failed", "rejected"):
            continue
        config = {}
        for name in space.names:
            v = _parse_cell(space, name, row[col[name]], f"trials CSV row {r}, column {name!r}")
            if v is not None:
                config[name] = v
        try:
            config = space.validate(config)
        except SearchSpaceError as err:
            raise StudyError(f"trials CSV row {r}: {err}") from None
        value = None
        if "value" in col and row[col["value"]].strip():
            try:
                value = float(row[col["value"]])
            except ValueError:
                raise StudyError(f"trials CSV row {r}, column 'value': {row[col['value']]!r} is not a number") from None
            if not math.isfinite(value):
                raise StudyError(f"trials CSV row {r}, column 'value': {value} is not finite")
        out.append((config, value))
    return out
