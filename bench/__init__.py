"""Latency and capacity benchmarks for rtc-server (issue 8). Entry point: `bench.cli.main`."""
