"""Data: BIDS discovery and validation, preprocessing, TorchIO loaders, splits, atomic I/O.

Importing it makes nibabel read and write gzip through ISA-L (``gzip_codec``).
"""

from sn_platform.data.gzip_codec import use_isal

use_isal()
