"""Differential privacy: exact noise samplers, accounting, continual counters, continual MaxSum /
SumSelect (`maxsum`, R5 in `r5`) and a black-box DP auditor (`audit`, `audit_mechanisms`);
see docs/privacy.md."""

from privacy import counters  # noqa: F401  (the counters package, importable as privacy.counters)
