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
    """Tab-separated table of rows (columns in first-seen order; floats to 6 significant digits)."""
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_format(row.get(column, "n/a")) for column in columns])
    return buffer.getvalue()


def _format(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def write_table(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Write ``table_text(rows)`` atomically (BIDS uses ``n/a`` for missing values)."""
    write_text(path, table_text(rows))
