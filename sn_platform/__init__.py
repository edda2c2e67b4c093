"""sn-platform: V-Net segmentation of the substantia nigra and its NM/QSM measures."""

__version__ = "0.1.0"
