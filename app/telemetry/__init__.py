"""Observability: OpenTelemetry traces and structured logs (metrics: app/ops)."""
