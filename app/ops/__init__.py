"""Operational endpoints (health, readiness, Prometheus metrics) and the same metrics over OTLP."""
