"""Fixtures: the real `posterior serve` (embedded store in a temp dir, or a
private redis-server on a unix socket), never a mock and never the machine's
127.0.0.1:6379.

The binary is $POSTERIOR_BIN, default ../../target/debug/posterior relative
to the repository root (tests/python_client.rs passes cargo's).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
BIN = Path(os.environ.get("POSTERIOR_BIN", REPO / "target" / "debug" / "posterior"))

ADMIN_KEY = "py-admin-key-0123456789abcdef"
DECIDE_KEY = "py-decide-key-0123456789abcdef"


class Redis:
    """A private redis-server on a unix socket in a temp dir."""

    def __init__(self, tmp: Path) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server must be installed (scripts/test installs it)")
        self.socket = tmp / "redis.sock"
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port", "0",
                "--unixsocket", str(self.socket),
                "--unixsocketperm", "700",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(tmp),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"redis+unix://{self.socket}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Server:
    """`posterior serve` on 127.0.0.1, port 0 the first time (the server
    prints the bound address on stdout); `restart()` brings it back on the
    same port and store, as a crash-and-restart would."""

    def __init__(self, tmp: Path, store: str, redis_url: str = "", **config: Any) -> None:
        if not BIN.exists():
            raise RuntimeError(
                f"{BIN}: no posterior binary; build it (cargo build --bin posterior) "
                "or set POSTERIOR_BIN"
            )
        self.tmp = tmp
        self.config_path = tmp / "posterior.toml"
        self.store = store
        self.redis_url = redis_url
        self.config = config
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_config(self) -> None:
        keys = self.config.get("keys", [])
        lines = [
            "[server]",
            f'listen = "127.0.0.1:{self.port}"',
            f"max_concurrent_requests = {self.config.get('max_concurrent_requests', 1024)}",
            "shutdown_grace_seconds = 1",
            f'tls_cert = "{self.config.get("tls_cert", "")}"',
            f'tls_key = "{self.config.get("tls_key", "")}"',
            "[store]",
            f'backend = "{self.store}"',
            f'path = "{self.tmp / "posterior.redb"}"',
            f'redis_url = "{self.redis_url}"',
            "[auth]",
            "keys = [" + ", ".join(f'"{k}"' for k in keys) + "]",
            "[bandit]",
            # Choose reads the store every call: a reward is visible at once.
            "choose_max_staleness_ms = 0",
            "[history]",
            # A point a second, so history() has points within a test.
            "interval_seconds = 1",
            "[log]",
            'filter = "warn"',
        ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        # On a restart the old port may be briefly unavailable (or, with
        # port 0 races, taken): retry the bind a few times.
        for attempt in range(50):
            self._write_config()
            env = {k: v for k, v in os.environ.items() if not k.startswith("POSTERIOR_")}
            proc = subprocess.Popen(
                [str(BIN), "serve", "--config", str(self.config_path)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.startswith("posterior listening on "):
                self.port = int(line.rsplit(":", 1)[1])
                self.proc = proc
                return
            proc.wait()
            err = proc.stderr.read() if proc.stderr else ""
            if "in use" not in err.lower() and "bind" not in err.lower():
                raise RuntimeError(f"posterior serve failed: {line}{err}")
            time.sleep(0.1)
        raise RuntimeError(f"posterior serve could not bind 127.0.0.1:{self.port}")

    def stop(self, crash: bool = False) -> None:
        """SIGTERM (drain, then exit), or with ``crash`` SIGKILL."""
        if self.proc is None:
            return
        if crash:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: a crash, no drain."""
        self.stop(crash=True)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def tmp_root() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="posterior-py-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session", params=["embedded", "redis"])
def server(request: pytest.FixtureRequest, tmp_root: Path) -> Iterator[Server]:
    """One server per store backend for the whole session (names are unique
    per test, so tests do not see each other's experiments)."""
    tmp = tmp_root / request.param
    tmp.mkdir()
    redis = Redis(tmp) if request.param == "redis" else None
    srv = Server(tmp, "redis" if redis else "embedded", redis.url if redis else "")
    yield srv
    srv.stop()
    if redis:
        redis.stop()


@pytest.fixture()
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    """A server of the test's own (embedded store), e.g. to restart it."""
    srv = Server(tmp_path, "embedded")
    yield srv
    srv.stop()


@pytest.fixture()
def name() -> str:
    """A unique experiment/study name per test."""
    return "t-" + uuid.uuid4().hex[:12]


@pytest.fixture()
def client(server: Server) -> Iterator["Client"]:
    from posterior_client import Client

    with Client(server.target, timeout=10.0) as c:
        yield c


if True:  # names for the annotations above
    from posterior_client import Client  # noqa: E402,F401
