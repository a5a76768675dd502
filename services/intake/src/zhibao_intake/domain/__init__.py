"""Intake's pure domain: admission of reported events (no I/O)."""
