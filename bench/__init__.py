"""Benchmarks for `jindou bench`."""
