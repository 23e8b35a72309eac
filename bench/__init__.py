"""Benchmarks for nfo; run them as scripts, they are not part of the test suite."""
