"""Benchmarks, load and fault runs: scripts that print figures against a reference in the same run."""
