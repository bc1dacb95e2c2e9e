"""Schedules: reports run later (``run_at``) or on a cron expression in the owner's time zone."""
