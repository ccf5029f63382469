"""Benchmarks: print figures and write JSON (never asserted by timed tests)."""
