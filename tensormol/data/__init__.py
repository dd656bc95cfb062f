"""tensormol.data."""
