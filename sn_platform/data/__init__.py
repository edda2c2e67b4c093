"""Data: BIDS discovery and validation, preprocessing, TorchIO loaders, splits, atomic I/O."""
