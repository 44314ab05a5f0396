"""prepflow's configuration: one pydantic-settings object, built once at each entry point.

Sections, each read from ``PREPFLOW_<SECTION>_<FIELD>`` (``env_nested_delimiter="_"`` with
``env_nested_max_split=1``: the first '_' after the section name separates it from the field,
so ``PREPFLOW_SMTP_MAX_ATTEMPTS`` is ``smtp.max_attempts``). The names documented in the
README keep their meaning: ``PREPFLOW_DATABASE_URL``, ``PREPFLOW_SMTP_HOST`` … .

Entry points (the CLI's commands, the Prefect flows, the benchmark) call ``load_settings()``
and pass the object, or the section they need, down; nothing below them reads the
environment, and nothing writes it to configure another part (a rehearsal points delivery at
its sink with ``Settings.pointed_at``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    SecretStr,
    ValidationError,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from flows.addresses import valid_email
from states.errors import InputError


def _sender(value: str) -> str:
    """'Name <address>' or a bare address; the address checked by the one validator."""
    from email.utils import parseaddr

    _, address = parseaddr(value)
    if not address:
        raise ValueError(f"{value!r} is not a sender like 'WTPF Secretariat <wtpf@itu.int>'")
    valid_email(address)
    return value


class SmtpSettings(BaseModel):
    """The SMTP server and delivery pacing (PREPFLOW_SMTP_*); never logged, never in a
    definition. ``repr`` hides the password (SecretStr)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = 25
    username: str | None = None
    password: SecretStr | None = None
    password_block: str | None = Field(
        default=None, description="name of a Prefect Secret block holding the password")
    starttls: bool = False
    use_tls: bool = False
    validate_certs: bool = True
    ca_file: FilePath | None = None
    """PEM file of the CA(s) that sign the server's certificate (a private CA), instead of the
    system's; checked to exist when the settings are read."""
    sender: Annotated[str, AfterValidator(_sender)] = "prepflow <prepflow@localhost.localdomain>"
    concurrency: int = Field(default=8, ge=1, le=64)
    timeout: float = Field(default=30.0, gt=0)
    # 10 tries over ~4 hours (backoff doubling, at most an hour apart): an SMTP outage of a
    # morning fails nothing; the issue 10 fault test holds an hour-long one to that.
    max_attempts: int = Field(default=10, ge=1)
    backoff_seconds: float = Field(default=60.0, ge=0)
    stale_after_seconds: float = Field(default=60.0, gt=0)
    """A delivery run's lease (issue 9): renewed every third of it while the run lives; a run
    that stops renewing is dead after it (a dead process on the same host: at once)."""
    uncertain: Literal["resend", "hold"] = "resend"
    """A message that may have reached the server unrecorded (its run died after the data, or
    the connection dropped before the 250): sent again with the same Message-ID (resend), or
    left 'uncertain' for a person (hold)."""

    def secret(self) -> str | None:
        """The password: from the environment, else from the Prefect Secret block (if named)."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_block:
            from prefect.blocks.system import Secret  # lazy: Prefect is slow to import

            block = Secret.load(self.password_block)  # sync context: a block, not a coroutine
            return str(block.get())  # type: ignore[union-attr]  # sync load returns the block
        return None


class SmtpTarget(BaseModel):
    """Another server to deliver to (a rehearsal's local sink): a Prefect flow parameter, so
    host and port only, never credentials."""

    host: str
    port: int = Field(ge=1, le=65535)


class DatabaseSettings(BaseModel):
    """The store (PREPFLOW_DATABASE_URL)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    url: str = "sqlite:///prepflow.db"
    """Any SQLAlchemy URL; by default a SQLite file in the working directory."""


class PrefectSettings(BaseModel):
    """Prefect-side choices of prepflow (PREPFLOW_PREFECT_*); Prefect's own settings stay
    PREFECT_* and are Prefect's business."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    deliver_limit: int = Field(default=5000, ge=1)
    """Most messages one scheduled delivery run sends (the CLI's ``--limit`` default)."""


class AuditSettings(BaseModel):
    """Where the audit log is anchored outside the database, and the key that makes its chain
    an HMAC chain (PREPFLOW_AUDIT_*). ``repr`` hides the key (SecretStr)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    witness: Path | None = None
    """An append-only file each advance adds the moved chain heads to, and ``audit --verify``
    checks the log against (unset: no witness). Keep it where the database's owner cannot
    write."""
    key: SecretStr | None = Field(default=None, min_length=16)
    """The audit key: processes created while it is set are chained with HMAC-SHA256 under it,
    so recomputing their chain needs it (flows.storage.chain). Keep it out of the database."""
    key_block: str | None = Field(
        default=None, description="name of a Prefect Secret block holding the audit key")

    def secret_key(self) -> bytes | None:
        """The key: from the environment, else from the Prefect Secret block (if named)."""
        if self.key is not None:
            return self.key.get_secret_value().encode("utf-8")
        if self.key_block:
            from prefect.blocks.system import Secret  # lazy: Prefect is slow to import

            block = Secret.load(self.key_block)  # sync context: a block, not a coroutine
            value = str(block.get())  # type: ignore[union-attr]  # sync load returns the block
            if len(value) < 16:
                raise InputError(f"the Prefect Secret block {self.key_block!r} "
                                 "(PREPFLOW_AUDIT_KEY_BLOCK) holds a key shorter than 16 "
                                 "characters; store a longer, random key in it.")
            return value.encode("utf-8")
        return None


class Settings(BaseSettings):
    """Everything configurable from the environment; nothing secret lives in a definition."""

    model_config = SettingsConfigDict(env_prefix="PREPFLOW_", env_nested_delimiter="_",
                                      env_nested_max_split=1, extra="ignore", frozen=True)

    smtp: SmtpSettings = SmtpSettings()
    database: DatabaseSettings = DatabaseSettings()
    prefect: PrefectSettings = PrefectSettings()
    audit: AuditSettings = AuditSettings()

    def pointed_at(self, target: SmtpTarget | None) -> Settings:
        """The same settings, delivering to ``target`` instead (None: unchanged)."""
        if target is None:
            return self
        smtp = self.smtp.model_copy(update={"host": target.host, "port": target.port})
        return self.model_copy(update={"smtp": smtp})


def load_settings() -> Settings:
    """The settings from the environment, read now: call once per entry point.

    A bad value is bad input (InputError: one paragraph, exit 2) naming the variable to fix,
    never a traceback: every command reads the settings, also those that send no mail.
    """
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{_variable(error['loc'])}: {error['msg']}" for error in exc.errors())
        raise InputError(f"prepflow's settings from the environment are not valid ({problems}). "
                         "Correct or unset these variables (see the README's Settings).") from None


def _variable(location: tuple[int | str, ...]) -> str:
    """The variable behind a settings field: ('smtp', 'port') → PREPFLOW_SMTP_PORT."""
    return "PREPFLOW_" + "_".join(str(part) for part in location).upper()
