"""gunicorn settings (read by ``gunicorn -c gunicorn.conf.py wsgi:app``)."""
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
# Each open /notifications socket holds one gthread thread for its life (bench/bench_notifications.py):
# two processes (one core each under the GIL) x 1,100 threads hold 1,000 sockets with pages answering in
# ~7 ms p50. Sockets are capped per process below the threads (post_fork), so the surplus threads serve
# pages and polls. worker_connections must exceed threads: gthread parks idle keep-alive connections
# (no thread held) only up to worker_connections - threads, and closes every response when that is <= 0.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "1100"))
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", str(threads + 200)))

timeout = 60
graceful_timeout = 25  # platforms send SIGKILL about 30 s after SIGTERM
# Longer than any Retry-After the API sends, so a client that waits it out does not race the close.
keepalive = 15
accesslog = "-" if os.environ.get("GUNICORN_ACCESS_LOG") == "1" else None


def post_fork(server, worker):  # noqa: ANN001, ARG001 - gunicorn hook signature
    """Cap sockets per process below its threads (the final settings, command-line flags included).

    A process holding that many sockets refuses more (503 + Retry-After): the client retries, likely on
    another worker, and the reserved threads keep serving pages and polls (bench/load_test.py).
    """
    usable = min(server.cfg.threads, server.cfg.worker_connections)
    reserve = max(2, min(100, usable // 4))
    os.environ.setdefault("LONGRUN_MAX_SOCKETS_PER_PROCESS", str(max(1, usable - reserve)))


def worker_exit(server, worker):  # noqa: ANN001, ARG001 - gunicorn hook signature
    """Export buffered spans before the worker process goes away."""
    from app.telemetry.tracing import flush_tracing

    flush_tracing()


def post_worker_init(worker):  # noqa: ANN001 - gunicorn hook signature
    """On SIGTERM, close notification sockets with 1012 first, so the worker is not held for graceful_timeout."""
    import signal

    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):  # noqa: ANN001
        from app.realtime.hub import begin_shutdown

        begin_shutdown()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_term)
