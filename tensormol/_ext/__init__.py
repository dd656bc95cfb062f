"""tensormol._ext."""
