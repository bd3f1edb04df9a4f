"""Differential privacy: exact noise samplers, accounting, continual counters (docs/privacy.md)."""
