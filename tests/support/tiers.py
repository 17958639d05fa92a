"""Test tiers. ``pytest -m "not slow"`` is the quick loop: no gunicorn, browser, schemathesis,
fault runs or real-data runs, and the property tests draw a tenth of their examples. The
full suite (``pytest``, what CI runs) has every test with every example.
"""

from __future__ import annotations

#: Set by conftest.py when the run leaves out the slow tier.
QUICK = False


def examples(full: int) -> int:
    """Hypothesis examples for a property test: ``full`` in the full suite, a tenth in the quick loop."""
    return max(10, full // 10) if QUICK else full
