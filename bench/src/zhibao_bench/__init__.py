"""Zhibao benchmark: measures the machine's own limit and the pipeline against it."""
