"""tensormol.cli."""
