"""Webhooks: signed completion messages to URLs an owner registered, retried with backoff and logged per job."""
