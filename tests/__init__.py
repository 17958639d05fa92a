"""The test suite: pytest -m "not slow" is the quick loop, plain pytest the full suite (CI)."""
