"""tensormol.models."""
