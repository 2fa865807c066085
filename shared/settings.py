"""Settings shared by every service; each service extends `CommonSettings` with its own."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DATA_DIR = Path(__file__).with_name("data")


class CommonSettings(BaseSettings):
    # A refused setting must not print what it was given: REDIS_URL and the credentials carry secrets.
    model_config = SettingsConfigDict(env_prefix="HOTLINE_", extra="ignore", hide_input_in_errors=True)

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "HOTLINE_REDIS_URL"),
    )
    # The system of record (PostgreSQL); None: the services that need it refuse to start without it.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "HOTLINE_DATABASE_URL")
    )
    host: str = "127.0.0.1"
    port: int = 8000
    consumer_name: str = Field(
        default="worker-0", validation_alias=AliasChoices("HOTLINE_CONSUMER_NAME", "HOSTNAME")
    )
    batch_size: int = Field(default=100, ge=1, le=10_000)
    poll_ms: int = Field(default=100, ge=1, description="XREADGROUP BLOCK time")
    # After a read that did not fill a batch, wait this long before the next (0: read again at once).
    read_linger_ms: int = Field(default=0, ge=0)
    # Above the slowest whole batch, or a claimer steals entries still being worked on.
    claim_idle_ms: int = Field(default=30_000, ge=100)
    max_deliveries: int = Field(default=5, ge=1)
    # A hard cap on memory only: entries are trimmed by `trim_stream` once every group is past them, so
    # a lagging group loses nothing until its backlog reaches this many entries (alert on lag/maxlen).
    stream_maxlen: int = Field(default=1_000_000, ge=1000)
    # Entries every group is done with are still kept this long, for inspection and replays.
    stream_retention_seconds: int = Field(default=24 * 3600, ge=0)
    graceful_timeout: float = 15.0
    # The built-in development credentials let `make run` work out of the box; a deployment sets this so a
    # forgotten credential stops the service at start instead of leaving a publicly known key in use.
    require_production_credentials: bool = False
    log_level: str = "INFO"
    taxonomy_path: Path = DATA_DIR / "taxonomy.yaml"
    routing_path: Path = DATA_DIR / "routing.yaml"
    gazetteer_path: Path = DATA_DIR / "gazetteer.yaml"


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or CIDR") from None
    return value.strip()


class ProxiedSettings(CommonSettings):
    """A service people reach through the ingress (intake, the console): who the client is, per-client
    limits and logs depend on which peers may name it."""

    trusted_proxies: list[Annotated[str, AfterValidator(_network)]] = Field(
        default=[],
        description="Addresses or CIDRs of the proxies (the ingress) whose X-Forwarded-For names the client;"
        " from any other peer the header is ignored, so per-client limits cannot be dodged by sending it",
    )


def refuse_dev_credentials(settings: CommonSettings, in_use: list[str]) -> None:
    """Fail validation, naming the settings (never their values), when production credentials are required
    and `in_use` lists settings still at their development values."""
    if settings.require_production_credentials and in_use:
        raise ValueError(
            "HOTLINE_REQUIRE_PRODUCTION_CREDENTIALS is set but these still hold the public development"
            f" credentials: {', '.join(in_use)}"
        )
