"""Benchmarks (see README.md here); results in RESULTS.md."""
