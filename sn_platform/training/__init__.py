"""Training: the one training loop, whole-volume validation and one run from its settings."""
