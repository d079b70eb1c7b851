"""Benchmarks of the connector (see bench/README.md). Run everything with ``bench/run``."""
