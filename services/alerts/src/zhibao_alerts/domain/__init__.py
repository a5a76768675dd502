"""The alerts service's pure domain: detection algorithms, rules, lifecycle, escalation."""
