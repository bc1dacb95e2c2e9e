"""Observability: OpenTelemetry traces, structured logs, metrics, health."""
