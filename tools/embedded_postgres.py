"""An embedded PostgreSQL: the server binaries shipped in the `pgserver` wheel (else the machine's own).

Started as a child process on a free local port, like the embedded Redis, so a new user (and the test
suite) needs no PostgreSQL installed. The data directory is kept between starts when one is given.
PostgreSQL refuses to run as root, so as root the server runs as `nobody`, which then owns the data; a
data directory `nobody` cannot reach (under a private home or pytest's temporary tree) is then kept in
the system's temporary directory instead, under a name derived from the one asked for.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Self

from tools.embedded import EmbeddedServer

RUN_AS_ROOT = "nobody"


def bin_dir() -> Path:
    """Where initdb and postgres are: pgserver's wheel (found without importing it: its import writes
    a warning about XDG_RUNTIME_DIR, an error under the test suite's warning policy), else the machine's."""
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if (bundled / "postgres").exists():
            return bundled
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "postgres").exists():
            return candidate
    found = shutil.which("postgres")
    if found:
        return Path(found).parent
    raise RuntimeError("no PostgreSQL binaries: install the pgserver package (pip install -e .)")


def data_dir_for(path: Path) -> Path:
    """`path`, or as root when `nobody` could not enter one of its parents, a stand-in for it."""
    if os.geteuid() != 0:
        return path
    for parent in path.parents:
        if parent.exists() and not parent.stat().st_mode & stat.S_IXOTH:
            name = hashlib.sha1(str(path).encode()).hexdigest()[:16]
            return Path(tempfile.gettempdir()) / f"hotline-pg-{name}"
    return path


class EmbeddedPostgres(EmbeddedServer):
    # SIGINT is PostgreSQL's fast shutdown: open sessions are ended, the data is consistent.
    stop_signal = signal.SIGINT
    stop_timeout = 30.0

    def __init__(self, data_dir: Path | None = None, port: int | None = None) -> None:
        super().__init__(data_dir, port, prefix="hotline-pg-")
        self.data_dir = data_dir_for(self.data_dir)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "postgres.log"

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "data"

    def _as_server_user(self) -> dict[str, Any]:
        if os.geteuid() != 0:
            return {}
        entry = pwd.getpwnam(RUN_AS_ROOT)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _own(self, path: Path) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam(RUN_AS_ROOT)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._own(self.data_dir)
        if (self.pgdata / "PG_VERSION").exists():
            return
        done = subprocess.run(
            [
                str(bin_dir() / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            ],
            capture_output=True,
            cwd=self.data_dir,
            **self._as_server_user(),
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.decode(errors='replace')[-2000:]}")

    def start(self, timeout: float = 30.0) -> Self:
        self._initdb()
        log = self.log_file.open("ab")
        self._own(self.log_file)
        try:
            self.process = subprocess.Popen(
                [
                    str(bin_dir() / "postgres"),
                    "-D",
                    str(self.pgdata),
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "unix_socket_directories=",
                    "-c",
                    "max_connections=200",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                **self._as_server_user(),
            )
        finally:
            log.close()
        self._wait_accepting(timeout)
        return self

    def _wait_accepting(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        ready = bin_dir() / "pg_isready"
        while True:
            probe = [str(ready), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
            if subprocess.run(probe, capture_output=True).returncode == 0:
                return
            assert self.process is not None
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_file.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"embedded PostgreSQL did not start ({self.log_file}):\n{tail}")
            time.sleep(0.1)
