"""The digital midbrain phantom: anatomy, acquisition physics, raters, BIDS writer, previews."""
