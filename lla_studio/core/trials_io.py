"""Trials as CSV: the ``trial,status,<parameters...>,value`` table of ``lla-studio run``, read back.

Reading is strict: every problem names its row and column, so a user importing measurements from a
spreadsheet learns exactly which cell to fix. A leading UTF-8 byte order mark (Excel's "CSV UTF-8")
is ignored. Cells are limited to the :mod:`csv` module's default 131 072 characters (no number or
choice is that long; the limit is process-wide, so it is not raised): a longer one is an error naming
its row.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from lla_studio.core.errors import SearchSpaceError, StudyError
from lla_studio.core.space import ChoiceParameter, IntegerParameter, RealParameter, SearchSpace

if TYPE_CHECKING:
    from lla_studio.core.session import Session

__all__ = ["METRIC_PREFIX", "format_cell", "parse_trial_rows", "parse_trials_csv", "trials_csv"]


def format_cell(value: Any) -> str:
    """CSV text of one configuration value: empty for inactive, ``true``/``false`` for booleans."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def trials_csv(session: Session) -> str:
    """CSV text of a session's trials: ``trial,status,<parameters...>,value,metric.<name>...`` (one
    column per extra metric any trial recorded, in order of first appearance; empty where a trial
    has none)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    names = list(session.search_space.names)
    metrics = list(dict.fromkeys(m for t in session.trials for m in t.metrics))
    writer.writerow(["trial", "status", *names, "value", *(f"{METRIC_PREFIX}{m}" for m in metrics)])
    for t in session.trials:
        writer.writerow([t.id, t.status, *(format_cell(t.config.get(n)) for n in names), format_cell(t.value),
                         *(format_cell(t.metrics.get(m)) for m in metrics)])
    return buf.getvalue()


METRIC_PREFIX = "metric."
"""Header prefix of the extra-metric columns of ``trials.csv``."""


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


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """``(row, cells)`` of each CSV record (row 1 = the header); a :class:`csv.Error` names its row."""
    reader = csv.reader(io.StringIO(text))
    row = 0
    while True:
        row += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            reason = str(err)
            if "field larger than field limit" in reason:
                reason = f"a cell is longer than {csv.field_size_limit()} characters"
            raise StudyError(f"trials CSV row {row}: {reason}") from None
        yield row, cells


def parse_trials_csv(text: str | bytes, space: SearchSpace) -> list[tuple[dict[str, Any], float | None]]:
    """Read ``(configuration, value)`` pairs from CSV text (see :func:`parse_trial_rows`)."""
    return [(config, value) for config, value, _ in parse_trial_rows(text, space)]


def parse_trial_rows(text: str | bytes, space: SearchSpace) -> list[tuple[dict[str, Any], float | None, dict[str, float]]]:
    """Read ``(configuration, value, metrics)`` from CSV text (``bytes`` are decoded as UTF-8, with or
    without a byte order mark). ``metric.<name>`` columns (as ``trials.csv`` writes them) are the
    extra metrics; an empty cell is a metric the trial did not record.

    Columns are matched by header name; ``trial`` and ``status`` are optional, every parameter column
    is required, ``value`` is optional (empty = no measurement yet). Rows whose status is ``failed``
    or ``rejected`` are skipped.

    Raises:
        StudyError: naming the row (1-based, header = row 1) and column of the first bad cell.
    """
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise StudyError(f"trials CSV: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start})") from None
    text = text.removeprefix("\ufeff")  # a BOM read as text (open(..., encoding="utf-8") keeps it)
    records = _records(text)
    try:
        header = [h.strip() for h in next(records)[1]]
    except StopIteration:
        raise StudyError("trials CSV is empty") from None
    missing = [n for n in space.names if n not in header]
    if missing:
        raise StudyError(f"trials CSV: missing column(s) {missing} (header: {header})")
    unknown = [h for h in header if h not in space.names and h not in ("trial", "status", "value", "message", "source")
               and not (h.startswith(METRIC_PREFIX) and len(h) > len(METRIC_PREFIX))]
    if unknown:
        raise StudyError(f"trials CSV: unknown column(s) {unknown}")
    col = {h: i for i, h in enumerate(header)}
    metric_columns = [h for h in header if h.startswith(METRIC_PREFIX) and len(h) > len(METRIC_PREFIX)]
    out: list[tuple[dict[str, Any], float | None, dict[str, float]]] = []
    for r, row in records:
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
        metrics: dict[str, float] = {}
        for h in metric_columns:
            cell = row[col[h]].strip()
            if not cell:
                continue
            try:
                number = float(cell)
            except ValueError:
                raise StudyError(f"trials CSV row {r}, column {h!r}: {cell!r} is not a number") from None
            if not math.isfinite(number):
                raise StudyError(f"trials CSV row {r}, column {h!r}: {number} is not finite")
            metrics[h[len(METRIC_PREFIX):]] = number
        out.append((config, value, metrics))
    return out
