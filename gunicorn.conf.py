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


def post_fork(server, worker):
    """Cap sockets per process below its threads (the final settings, command-line flags included).

    A process holding that many sockets refuses more (503 + Retry-After): the client retries, likely on
    another worker, and the reserved threads keep serving pages and polls (bench/load_test.py).
    """
    usable = min(server.cfg.threads, server.cfg.worker_connections)
    reserve = max(2, min(100, usable // 4))
    os.environ.setdefault("LONGRUN_MAX_SOCKETS_PER_PROCESS", str(max(1, usable - reserve)))


def worker_exit(server, worker):
    """Export buffered spans before the worker process goes away."""
    from app.telemetry.tracing import flush_tracing

    flush_tracing()


def post_worker_init(worker):
    """On SIGTERM, close notification sockets with 1012 first, so the worker is not held for graceful_timeout;
    act once on SIGINT/SIGQUIT (see ``worker_int``)."""
    import signal

    from app.realtime import shutdown

    shutdown.arm()
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        shutdown.request()  # lock-free: a second SIGTERM may interrupt this handler
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_term)

    # Ctrl-C's SIGINT and the master's SIGQUIT reach a worker together; gunicorn's quit handler is not
    # reentrant (it takes the thread pool's lock, then exits): run it for the first of them only.
    quit_handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGQUIT)}
    quitting: list[int] = []

    def on_quit(signum, frame):
        if quitting:
            return
        quitting.append(signum)
        if callable(quit_handlers[signum]):
            quit_handlers[signum](signum, frame)

    for sig in quit_handlers:
        signal.signal(sig, on_quit)


def worker_int(worker):
    """On SIGINT or SIGQUIT (quick shutdown), close notification sockets with 1012 before the worker exits.

    Ctrl-C in a terminal sends SIGINT to every process of the group, so workers get it directly (and the
    master's SIGQUIT right after). gunicorn calls this hook, then ``sys.exit``: the exiting interpreter waits
    for the socket threads, which end only when told to -- without this the master waited graceful_timeout
    and SIGKILLed the worker.
    """
    from app.realtime import shutdown

    shutdown.request()
