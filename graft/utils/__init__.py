"""Small helpers every part of graft uses: atomic file writes, logging, errors."""
