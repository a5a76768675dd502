"""The response service's rules, free of I/O."""
