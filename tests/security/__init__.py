"""Attack tests: what an outsider can learn, and what they cannot."""
