"""Settings read from the environment, with embedded defaults that need no server.

Nothing here connects to anything: `Settings.from_env()` only reads variables and, for the
embedded defaults, makes sure `./var/` exists and holds a generated secret key.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = PROJECT_ROOT / "templates"


def _var_dir() -> Path:
    return Path(os.environ.get("SESSIONPACK_VAR_DIR", "var")).resolve()


def _secret_key(var_dir: Path) -> str:
    """The configured key, or one generated once into ./var/secret_key (mode 0600)."""
    configured = os.environ.get("SECRET_KEY")
    if configured:
        return configured
    path = var_dir / "secret_key"
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


@dataclass(frozen=True)
class Settings:
    var_dir: Path
    database_url: str
    broker_url: str
    secret_key: str
    public_base_url: str = "http://localhost:8000"
    smtp_url: str | None = None
    smtp_from: str = "sessionpack <no-reply@sessionpack.example.com>"
    stripe_api_key: str | None = None
    stripe_api_base: str | None = None
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
    extra: dict = field(default_factory=dict)

    @property
    def outbox_dir(self) -> Path:
        return self.var_dir / "outbox"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        e = os.environ if env is None else env
        var_dir = _var_dir()
        var_dir.mkdir(parents=True, exist_ok=True)

        def opt(name: str) -> str | None:
            value = e.get(name)
            return value if value else None

        def num(name: str, default: float) -> float:
            return float(e.get(name) or default)

        return cls(
            var_dir=var_dir,
            database_url=opt("DATABASE_URL") or f"sqlite:///{var_dir / 'sessionpack.db'}",
            broker_url=opt("BROKER_URL") or f"sqla+sqlite:///{var_dir / 'broker.db'}",
            secret_key=_secret_key(var_dir),
            public_base_url=(opt("PUBLIC_BASE_URL") or "http://localhost:8000").rstrip("/"),
            smtp_url=opt("SMTP_URL"),
            smtp_from=opt("SMTP_FROM") or "sessionpack <no-reply@sessionpack.example.com>",
            stripe_api_key=opt("STRIPE_API_KEY"),
            stripe_api_base=opt("STRIPE_API_BASE"),
            zoom_account_id=opt("ZOOM_ACCOUNT_ID"),
            zoom_client_id=opt("ZOOM_CLIENT_ID"),
            zoom_client_secret=opt("ZOOM_CLIENT_SECRET"),
            zoom_user=opt("ZOOM_USER") or "me",
            zoom_api_base=(opt("ZOOM_API_BASE") or "https://api.zoom.us/v2").rstrip("/"),
            zoom_oauth_url=opt("ZOOM_OAUTH_URL") or "https://zoom.us/oauth/token",
            webex_token=opt("WEBEX_TOKEN"),
            webex_api_base=(opt("WEBEX_API_BASE") or "https://webexapis.com/v1").rstrip("/"),
            goto_token=opt("GOTO_TOKEN"),
            goto_api_base=(opt("GOTO_API_BASE") or "https://api.getgo.com/G2M/rest").rstrip("/"),
            reminder_tick_seconds=num("REMINDER_TICK_SECONDS", 60.0),
            outbox_sweep_seconds=num("OUTBOX_SWEEP_SECONDS", 30.0),
            saga_stall_seconds=num("SAGA_STALL_SECONDS", 120.0),
            approval_expiry_hours=num("APPROVAL_EXPIRY_HOURS", 72.0),
            calendar_busy_cache_seconds=num("CALENDAR_BUSY_CACHE_SECONDS", 60.0),
            http_timeout_seconds=num("HTTP_TIMEOUT_SECONDS", 10.0),
            broker_visibility_timeout=num("BROKER_VISIBILITY_TIMEOUT", 600.0),
            meeting_sweep_grace_seconds=num("MEETING_SWEEP_GRACE_SECONDS", 600.0),
            meeting_sweep_window_hours=num("MEETING_SWEEP_WINDOW_HOURS", 24.0),
            orphaned_fee_grace_seconds=num("ORPHANED_FEE_GRACE_SECONDS", 3600.0),
            orphaned_fee_window_hours=num("ORPHANED_FEE_WINDOW_HOURS", 168.0),
            calendar_resync_seconds=num("CALENDAR_RESYNC_SECONDS", 900.0),
            calendar_resync_days=num("CALENDAR_RESYNC_DAYS", 7.0),
        )
