"""Objective functions: benchmarks, user callables, manual entry."""
