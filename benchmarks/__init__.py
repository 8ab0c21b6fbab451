"""Benchmarks: `make bench` prints throughput and per-hop latency figures (never asserted in tests)."""
