"""Networks and losses."""
