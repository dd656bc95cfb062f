"""tensormol.nn."""
