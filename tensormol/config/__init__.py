"""tensormol.config."""
