"""Settings read from the environment, with embedded defaults that need no server.

Each variable and its default are written once, as a field: the field `database_url` is read
from `DATABASE_URL`, and so on (`var_dir` from `SESSIONPACK_VAR_DIR`). Empty variables count as
unset. `Settings()` reads the environment; `Settings(field=value, ...)` overrides fields.

Importing this module reads and writes nothing. Building a `Settings` makes sure the var dir
exists and, when no `SECRET_KEY` is given, holds a generated secret key; the embedded database
and broker are SQLite files in it. Nothing here connects to anything.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _generated_secret_key(var_dir: Path) -> str:
    """A key generated once into `<var_dir>/secret_key` (mode 0600), then read from there."""
    path = var_dir / "secret_key"
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        frozen=True, env_ignore_empty=True, case_sensitive=False, populate_by_name=True, extra="ignore",
    )

    var_dir: Path = Field(Path("var"), validation_alias="SESSIONPACK_VAR_DIR")
    # Unset: SQLite files in the var dir, and a key generated into it (filled in when built).
    database_url: str | None = None
    broker_url: str | None = None
    secret_key: str | None = None
    public_base_url: str = "http://localhost:8000"
    # The port the `web` process listens on (the Procfile's `--port ${PORT:-8000}` reads the same).
    port: int = 8000
    # Jitsi Meet rooms (`conferencing.provider: jitsi`) live on this server; no account needed.
    jitsi_base_url: str = "https://meet.jit.si"
    smtp_url: str | None = None
    smtp_from: str = "sessionpack <no-reply@sessionpack.example.com>"
    stripe_api_key: str | None = None
    stripe_api_base: str | None = None
    # The signing secret of the Stripe endpoint POST /webhooks/stripe (whsec_...); unset: 503.
    stripe_webhook_secret: str | None = None
    # Requests per API key (the `limits` notation), shared by every web process on Redis.
    api_rate_limit: str = "600/minute"
    # Outgoing webhooks: the first wait after a failed delivery (doubling up to 6 hours; given up
    # after 3 days).
    webhook_retry_seconds: float = 30.0
    zoom_account_id: str | None = None
    zoom_client_id: str | None = None
    zoom_client_secret: str | None = None
    zoom_user: str = "me"
    zoom_api_base: str = "https://api.zoom.us/v2"
    zoom_oauth_url: str = "https://zoom.us/oauth/token"
    webex_token: str | None = None
    webex_api_base: str = "https://webexapis.com/v1"
    goto_token: str | None = None
    goto_api_base: str = "https://api.getgo.com/G2M/rest"
    reminder_tick_seconds: float = 60.0
    outbox_sweep_seconds: float = 30.0
    saga_stall_seconds: float = 120.0
    approval_expiry_hours: float = 72.0
    calendar_busy_cache_seconds: float = 60.0
    http_timeout_seconds: float = 10.0
    broker_visibility_timeout: float = 600.0
    # How often a worker on the embedded SQLite broker polls its queue while it is empty
    # (worker/embedded_broker.py): each hop of a booking waits half of it on average.
    broker_polling_interval: float = Field(0.1, gt=0, le=60)
    # The orphan-meeting sweep (services/conferencing/reconcile.py) waits this long after a
    # troubled conferencing step (longer than a create can take to land: HTTP timeout and
    # retries), then sweeps its sessions each tick for this many hours.
    meeting_sweep_grace_seconds: float = 600.0
    meeting_sweep_window_hours: float = 24.0
    # The orphaned-fee sweep (services/lifecycle/abandon.py) refunds a reschedule fee that stayed
    # charged this long without a move (far beyond a task's retries and a redelivery), looking
    # back this many hours.
    orphaned_fee_grace_seconds: float = 3600.0
    orphaned_fee_window_hours: float = 168.0
    # The calendar re-sync sweep (services/calendar/resync.py): its tick, also the first wait
    # after a failed sync (doubling per re-sync, capped at a day), and how long it keeps trying.
    calendar_resync_seconds: float = 900.0
    calendar_resync_days: float = 7.0
    # How long an admin or customer grant made by the CLI or the web process stays valid
    # (services/grants.py): long enough to wait out a short broker outage in the task outbox.
    grant_ttl_minutes: float = Field(30.0, gt=0, le=24 * 60)
    # Emails' bodies and attachments (manage links, passcodes, host links) are emptied this many
    # days after delivery by beat's purge-email-bodies sweep; their metadata stays.
    email_body_retention_days: float = Field(30.0, gt=0, le=3650)
    # Objects handed in by code, never read from the environment (tests tune retry policies).
    extra: dict[str, Any] = Field(default_factory=dict, exclude=True)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        return (init_settings, _EnvWithoutExtra(settings_cls))

    @field_validator("public_base_url", "zoom_api_base", "webex_api_base", "goto_api_base", "jitsi_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _embedded_defaults(self) -> "Settings":
        # Frozen: the derived defaults are set once, here, while the object is being built.
        var_dir = self.var_dir.resolve()
        var_dir.mkdir(parents=True, exist_ok=True)
        object.__setattr__(self, "var_dir", var_dir)
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{var_dir / 'sessionpack.db'}")
        if not self.broker_url:
            object.__setattr__(self, "broker_url", f"sqla+sqlite:///{var_dir / 'broker.db'}")
        if not self.secret_key:
            object.__setattr__(self, "secret_key", _generated_secret_key(var_dir))
        return self

    @property
    def outbox_dir(self) -> Path:
        return self.var_dir / "outbox"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def replace(self, **changes: Any) -> "Settings":
        """A copy with some fields changed (validated like the original)."""
        return type(self)(**{**self.model_dump(), "extra": self.extra, **changes})


from pydantic_settings import EnvSettingsSource  # noqa: E402


class _EnvWithoutExtra(EnvSettingsSource):
    """The environment, except for `extra` (objects only code can give)."""

    def get_field_value(self, field, field_name):
        if field_name == "extra":
            return None, field_name, False
        return super().get_field_value(field, field_name)
