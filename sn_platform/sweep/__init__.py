"""Sweeps: search spaces, cross-validated Ray Tune trials, the leaderboard and the final model."""
