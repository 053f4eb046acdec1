"""Observing memory: /proc and cgroup readers, metrics lines, sizing advice, /metrics."""
