"""The console's settings (env `HOTLINE_*`). Users are configured with scrypt password hashes only
(`hotline console hash-password`); with none configured, development users exist for `make run`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.console.passwords import is_password_hash
from shared.settings import ProxiedSettings, refuse_dev_credentials

Role = Literal["operator", "department", "supervisor"]
DEV_SESSION_KEY = "hotline-development-console-session-key"
DEV_OPERATOR = ("operator", "hotline-dev-operator")
DEV_SUPERVISOR = ("supervisor", "hotline-dev-supervisor")


def dev_department_password(department: str) -> str:
    """A department's development password (for `make run` only); its user name is the department id."""
    return f"hotline-dev-{department}"


class User(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    department: str | None = Field(None, description="the one department a department user acts for")
    password: str = Field(description="scrypt hash from `hotline console hash-password`, never the password")
    name: str | None = Field(None, description="shown in the console and written into the history")

    @field_validator("password")
    @classmethod
    def _hashed(cls, value: str) -> str:
        if not is_password_hash(value):
            raise ValueError("passwords are configured as scrypt hashes (hotline console hash-password)")
        return value

    @model_validator(mode="after")
    def _department_when_needed(self) -> User:
        if (self.role == "department") != (self.department is not None):
            raise ValueError("a department user names exactly one department; other roles name none")
        return self


class ConsoleSettings(ProxiedSettings):
    port: int = 8085
    console_users: dict[str, User] | None = Field(
        default=None,
        description="user name -> {role, department, password (scrypt hash), name}; unset: development users",
    )
    console_session_key: str = Field(
        default=DEV_SESSION_KEY, min_length=32, description="HMAC key of the session cookie's signature"
    )
    console_session_seconds: int = Field(default=12 * 3600, ge=60, description="a session's lifetime")
    console_secure_cookies: bool = Field(
        default=False, description="mark cookies Secure (set it wherever the console is served over HTTPS)"
    )
    console_login_attempts: int = Field(
        default=5,
        ge=1,
        description="failed sign-ins per user name (ten times as many per client address: the peer, or the"
        " client a trusted proxy names) per window",
    )
    console_login_window_seconds: int = Field(default=900, ge=10)
    console_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="how often live parts refresh: a change shows within this and the loop's own delay"
        " (aim: 2 s)",
    )
    timezone: str = Field(default="Asia/Shanghai", description="the zone times are shown in")
    min_volume: int = Field(default=20, ge=1, description="cases a unit needs to be ranked (as evaluation)")

    @model_validator(mode="after")
    def _production_credentials(self) -> ConsoleSettings:
        refuse_dev_credentials(self, self.dev_credentials_in_use())
        return self

    def dev_credentials_in_use(self) -> list[str]:
        found = []
        if self.console_users is None:
            found.append("console_users")
        if self.console_session_key == DEV_SESSION_KEY:
            found.append("console_session_key")
        return found
