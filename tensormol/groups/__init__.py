"""tensormol.groups."""
