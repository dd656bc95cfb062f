"""tensormol.testing."""
