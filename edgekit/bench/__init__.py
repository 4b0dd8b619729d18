"""Benchmark harness: timing, statistics, memory, reports."""
