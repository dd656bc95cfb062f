"""tensormol.so3."""
