"""The TSV tables: BIDS's n/a for what a row lacks, and a session column where any row
names a session."""

from __future__ import annotations

import math

from sn_platform.evaluation.tables import table_text


def test_a_session_column_follows_the_participant_wherever_one_row_has_a_session():
    rows = [
        {"participant_id": "sub-01", "group": "HC", "dsc": 0.8123456789},
        {"participant_id": "sub-02", "session_id": "ses-pre", "group": "PD", "dsc": math.nan},
    ]
    assert table_text(rows) == (
        "participant_id\tsession_id\tgroup\tdsc\n"
        "sub-01\tn/a\tHC\t0.812346\n"
        "sub-02\tses-pre\tPD\tn/a\n"
    )
    assert table_text(rows[:1]) == "participant_id\tgroup\tdsc\nsub-01\tHC\t0.812346\n"
