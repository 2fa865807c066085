"""Starting the whole system: Redis and PostgreSQL (each embedded or given), the init steps (consumer
groups, schema migrations), and each service as a process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from shared.bus import init_streams, run_with_redis
from shared.db import migrate
from tools.embedded import EmbeddedRedis, free_port_block
from tools.embedded_postgres import EmbeddedPostgres

SERVICES: tuple[str, ...] = (
    "intake",
    "classifier",
    "dispatch",
    "evaluation",
    "insight",
    "console",
    "recorder",
    "urgency-review",
)
# Services that are not a package's __main__ (python -m <module>).
MODULES: dict[str, str] = {"urgency-review": "services.classifier.review"}


def module_of(service: str) -> str:
    """What `python -m` runs for `service` (here and in the Kubernetes manifests)."""
    return MODULES.get(service, f"services.{service}")


@dataclass
class Stack:
    """The running system. Use as a context manager: everything it started stops on exit."""

    redis_url: str | None = None
    base_port: int = 0  # 0: the first of a block of free ports, one per service
    data_dir: Path | None = None
    services: tuple[str, ...] = SERVICES
    extra_env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    embedded: EmbeddedRedis | None = None
    database_url: str | None = None
    embedded_pg: EmbeddedPostgres | None = None
    ready_timeout: float = 60.0  # benchmarks on a busy machine wait longer
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def port_of(self, service: str) -> int:
        return self.base_port + SERVICES.index(service)

    def url_of(self, service: str) -> str:
        return f"http://127.0.0.1:{self.port_of(service)}"

    def start(self, ready_timeout: float = 60.0) -> Stack:
        if not self.base_port:
            self.base_port = free_port_block(len(SERVICES))
        if self.redis_url is None:
            self.embedded = EmbeddedRedis(self.data_dir).start()
            self.redis_url = self.embedded.url
        try:
            if self.database_url is None:
                # Inside the embedded Redis's directory when one is given, so `make run` keeps both.
                pg_dir = self.data_dir / "postgres" if self.data_dir is not None else None
                self.embedded_pg = EmbeddedPostgres(pg_dir).start()
                self.database_url = self.embedded_pg.url
            # In a thread of its own, so a Stack can also be started from code with a running event loop.
            with ThreadPoolExecutor(1) as pool:
                pool.submit(run_with_redis, self.redis_url, init_streams).result()
                pool.submit(migrate.upgrade, self.database_url).result()
            for service in self.services:
                self.start_service(service)
            self.wait_ready(ready_timeout)
        except BaseException:
            self.stop()  # never leave half a system running (and consuming) behind
            raise
        return self

    def env_for(self, service: str) -> dict[str, str]:
        assert self.redis_url is not None
        return {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "DATABASE_URL": self.database_url or "",
            "HOTLINE_PORT": str(self.port_of(service)),
            "HOTLINE_CONSUMER_NAME": f"{service}-{os.getpid()}",
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }

    def start_service(self, service: str) -> subprocess.Popen[bytes]:
        log = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log = (self.log_dir / f"{service}.log").open("ab")
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", module_of(service)],
                env=self.env_for(service),
                stdout=log if log is not None else subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
        finally:
            if log is not None:
                log.close()  # the child holds its own descriptor
        self.processes[service] = process
        return process

    def _log_hint(self, service: str) -> str:
        if self.log_dir is None:
            return ""
        log = self.log_dir / f"{service}.log"
        tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
        return f"; {log}:\n" + "\n".join(tail)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        waiting = set(self.processes)
        while waiting:
            for service in list(waiting):
                process = self.processes[service]
                if process.poll() is not None:
                    code, hint = process.returncode, self._log_hint(service)
                    raise RuntimeError(f"{service} exited with code {code} while starting{hint}")
                try:
                    if httpx.get(f"{self.url_of(service)}/readyz", timeout=1.0).status_code == 200:
                        waiting.discard(service)
                except httpx.HTTPError:
                    pass
            if waiting and time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {timeout:.0f}s: {', '.join(sorted(waiting))}")
            if waiting:
                time.sleep(0.2)

    def stop_service(self, service: str, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        process = self.processes.pop(service)
        process.send_signal(sig)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for service in list(self.processes):
            self.stop_service(service, sig=signal.SIGTERM)
        if self.embedded is not None:
            self.embedded.close()
            self.embedded = None
        if self.embedded_pg is not None:
            self.embedded_pg.close()
            self.embedded_pg = None

    def __enter__(self) -> Stack:
        return self.start(self.ready_timeout)

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
