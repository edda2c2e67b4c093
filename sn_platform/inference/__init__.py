"""Inference: whole-volume prediction on the native grid, post-processing, batch runs, reports."""
