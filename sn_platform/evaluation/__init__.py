"""Evaluation: metrics, NM/QSM measures, per-subject and cohort agreement, plots."""
