"""tensormol.ops."""
