"""Data: the phantom generator, BIDS discovery and validation, TorchIO loaders, splits."""
