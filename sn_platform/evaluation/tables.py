"""Per-subject tables as BIDS-style TSV (``n/a`` for missing values)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sn_platform.data.io import write_text


def table_text(rows: Sequence[dict[str, Any]]) -> str:
    """Tab-separated table of rows (columns in first-seen order; floats to 6 significant
    digits); where any row names a session, ``session_id`` follows ``participant_id``
    (``with_session_column``)."""
    rows = with_session_column(rows)
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_format(row.get(column, "n/a")) for column in columns])
    return buffer.getvalue()


def with_session_column(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows``, each with a ``session_id`` right after its ``participant_id`` (``n/a`` for
    a subject without sessions), where any row has one; as they are where none has."""
    if not any("session_id" in row for row in rows):
        return list(rows)
    return [
        {"participant_id": row["participant_id"], "session_id": row.get("session_id", "n/a"), **row}
        for row in rows
    ]


def _format(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def write_table(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Write ``table_text(rows)`` atomically (BIDS uses ``n/a`` for missing values)."""
    write_text(path, table_text(rows))
