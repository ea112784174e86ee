"""Settings, read from the environment and validated once at start.

Top-level aliases (`DATABASE_URL`, `REDIS_URL`, `PORT`) follow platform conventions; everything
else lives in nested sections under the `HERALD_` prefix, e.g. `HERALD_HTTP__MAX_BODY_BYTES`.
Connection strings and keys are `SecretStr`, so they never appear in logs or reprs.
"""

from __future__ import annotations

import ssl
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class HttpSettings(BaseModel):
    host: str = "127.0.0.1"
    public_url: str | None = None
    max_body_bytes: int = Field(1_048_576, ge=1024, description="JSON request body limit")
    max_upload_bytes: int = Field(52_428_800, ge=1024, description="File upload body limit")
    rate_limit_per_minute: int = Field(1200, ge=1, description="Requests per API key per minute")
    docs_enabled: bool = True
    cors_allowed_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins allowed to call the API (CORS), e.g. "
        '`["https://app.example.com"]`, or `["*"]` for any; empty (default): no CORS headers',
    )
    cors_max_age_seconds: int = Field(
        600, ge=0, le=86_400, description="How long browsers may cache a CORS preflight answer"
    )

    @field_validator("cors_allowed_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            parts = urlsplit(origin)
            is_origin = parts.scheme in ("http", "https") and parts.netloc and not parts.path
            if origin != "*" and not (is_origin and not parts.query and not parts.fragment):
                raise ValueError(
                    f"{origin!r} is not an origin: scheme://host[:port], no path (or `*`)"
                )
        return origins


class LoggingSettings(BaseModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_output: bool = True


class WorkerSettings(BaseModel):
    max_jobs: int = Field(50, ge=1)
    job_timeout_seconds: int = Field(300, ge=1)
    queue_name: str = "herald:queue"
    shutdown_grace_seconds: int = Field(
        30,
        ge=0,
        description="On SIGTERM/SIGINT, how long running jobs may finish before they are "
        "cancelled (and re-queued); 0 cancels them at once",
    )
    outage_retry_max_seconds: float = Field(
        2.0,
        gt=0,
        le=60,
        description="Longest back-off between retries of a job that found PostgreSQL or "
        "Redis unavailable (0.5 s, doubling up to this)",
    )
    max_tries: int = Field(
        1000,
        ge=1,
        description="Runs of one job before arq gives up; each outage back-off is one",
    )


class IdempotencySettings(BaseModel):
    ttl_hours: int = Field(24, ge=1)
    in_flight_timeout_seconds: int = Field(60, ge=1)


class EngineSettings(BaseModel):
    batch_size: int = Field(200, ge=1, le=5000, description="Enrollments per engine job")
    scan_limit: int = Field(20_000, ge=1, description="Due enrollments leased per scan")
    lease_seconds: int = Field(
        60, ge=5, description="A leased batch not finished by then is re-driven (reconciler)"
    )
    max_queued_jobs: int = Field(
        50, ge=1, description="The scan leases no more work while the queue holds this many"
    )
    lookahead_ms: int = Field(
        1000, ge=0, description="Work due this soon is leased early; its job waits for the time"
    )


class SmtpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(25, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    security: Literal["none", "starttls", "tls"] = Field(
        "none",
        description="`none` (plaintext, never upgraded), `starttls` (required: a server that "
        "does not offer it gets nothing) or `tls` (implicit TLS, e.g. port 465)",
    )
    timeout_seconds: float = Field(30.0, gt=0)
    helo_name: str | None = None
    max_connections: int = Field(
        20,
        ge=1,
        le=20,
        description="Connections one delivery batch keeps open at once; each carries up to "
        "100 messages (connect, TLS and AUTH once per connection)",
    )
    ca_file: str | None = Field(
        None,
        description="PEM bundle of the CAs trusted for the server's certificate, *instead of* "
        "the system's (e.g. a private CA); unset: the system's CAs",
    )
    verify_certificate: bool = Field(
        True,
        description="Check the server's certificate and host name (`starttls`, `tls`). False "
        "accepts any certificate, so anyone on the path can read the mail and the AUTH "
        "password: development only, refused in production (use `ca_file` instead)",
    )

    @field_validator("ca_file")
    @classmethod
    def _loadable_ca_file(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ssl.create_default_context(cafile=value)
        except (OSError, ValueError) as error:  # missing, unreadable, or no PEM certificate
            raise ValueError(f"cannot load {value!r} as a PEM CA bundle: {error}") from error
        return value


class HttpProviderSettings(BaseModel):
    url: str | None = Field(None, description="Where the HTTP provider POSTs messages")
    token: SecretStr | None = Field(None, description="Sent as `Authorization: Bearer`")
    timeout_seconds: float = Field(15.0, gt=0)


DEV_TRACKING_SECRET = "dev-only-tracking-secret-change-me"


class ChannelSettings(BaseModel):
    email_provider: Literal["log", "smtp", "http"] = "log"
    sms_provider: Literal["log", "http"] = "log"
    default_from: str = Field("Herald <noreply@herald.localhost>", description="Email From")
    smtp: SmtpSettings = SmtpSettings()
    http: HttpProviderSettings = HttpProviderSettings()
    rate_per_second: int = Field(
        100, ge=1, description="Sends per second per provider, shared by all workers"
    )
    max_attempts: int = Field(6, ge=1, description="Retryable failures before `failed`")
    sending_lease_seconds: int = Field(
        300,
        ge=5,
        description="A send not recorded by then is presumed lost with its worker; keep it "
        "well above the SMTP/HTTP timeouts so a slow live send is not taken for a dead one",
    )
    tracking_secret: SecretStr = Field(
        SecretStr(DEV_TRACKING_SECRET),
        description="Signs open/click/unsubscribe tokens; set a random value in production",
    )


LOOPBACK_NETWORKS = ["127.0.0.0/8", "::1/128"]


class WebhookSettings(BaseModel):
    allowed_networks: list[str] = Field(
        default_factory=list,
        description="CIDRs webhook URLs may reach even though they are private, loopback or "
        "link-local (e.g. `10.20.0.0/16` for an internal receiver). `herald dev` and the "
        "tests allow loopback; production allows nothing by default",
    )
    resolve_overrides: dict[str, str] = Field(
        default_factory=dict,
        description="Host name -> IP address used instead of DNS (like curl's `--resolve`); "
        "the guard checks the overridden address like any other",
    )
    timeout_seconds: float = Field(15.0, gt=0, le=60, description="Per attempt, all phases")
    disable_after_failing_days: float = Field(
        5.0, gt=0, description="An endpoint failing continuously this long is disabled"
    )
    max_concurrency_per_endpoint: int = Field(
        8, ge=1, le=100, description="Attempts in flight at once for one endpoint"
    )
    batch_size: int = Field(100, ge=1, le=1000, description="Deliveries leased per round")
    lease_seconds: int = Field(
        60, ge=20, description="A leased delivery not recorded by then is attempted again"
    )
    retention_days: int = Field(
        30, ge=1, description="Events and attempts older than this are purged"
    )


class InboundProviderSettings(BaseModel):
    scheme: Literal["standard_webhooks", "hmac_sha256"] = Field(
        description="`standard_webhooks` (webhook-id/-timestamp/-signature headers) or "
        "`hmac_sha256` (`X-Herald-Signature: sha256=<hex HMAC of timestamp.body>` + "
        "`X-Herald-Timestamp`)"
    )
    secret: SecretStr = Field(description="`whsec_...` for standard_webhooks, any string else")
    tolerance_seconds: int = Field(300, ge=1, description="Accepted timestamp skew")


class InboundSettings(BaseModel):
    providers: dict[str, InboundProviderSettings] = Field(
        default_factory=dict,
        description="Providers allowed to post events to `/v1/inbound/{provider}`, by name",
    )


class MetricsSettings(BaseModel):
    """Tunables of the metrics domain (docs/metrics.md)."""

    fold_batch: int = Field(50_000, ge=1, description="Deltas folded per statement")
    pending_batch: int = Field(10_000, ge=1, description="Queued events examined per fold")
    settle_seconds: float = Field(
        0.0,
        ge=0,
        description="Queued events wait this long before their facts are frozen (a margin "
        "for touches whose transaction commits late; delays stream updates by as much)",
    )
    heartbeat_seconds: float = Field(15.0, gt=0, description="SSE heartbeat interval")
    max_buckets: int = Field(2000, ge=1, description="Most buckets one time series may span")


class SegmentSettings(BaseModel):
    """Tunables of the segments domain (docs/segments.md)."""

    evaluation_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="Longest a preview or a live count may evaluate a rule before it answers "
        "422 `evaluation_timeout` (saved segments keep `member_count` current instead)",
    )
    history_retention_days: int = Field(
        365,
        ge=1,
        description="Membership journal rows (`GET /v1/segments/{id}/changes`) and member count "
        "snapshots older than this are purged daily",
    )


class NotificationSettings(BaseModel):
    """Owner notifications (docs/channels.md, "Owner notifications")."""

    enabled: bool = Field(
        True, description="Email owners when an endpoint is disabled or sends fail"
    )
    failing_window_minutes: int = Field(
        60, ge=1, description="A campaign's sends are judged over this many recent minutes"
    )
    failing_min_failed: int = Field(
        5, ge=1, description="Failed messages in the window that make a campaign's sends failing"
    )
    failing_min_share: float = Field(
        0.5, gt=0, le=1, description="...and the share of its settled messages they must be"
    )
    repeat_hours: int = Field(
        24, ge=1, description="A campaign's owners hear about failing sends at most this often"
    )


class SecuritySettings(BaseModel):
    encryption_keys: SecretStr | None = Field(
        None,
        description="Comma-separated Fernet keys encrypting stored signing secrets: the first "
        "encrypts, all decrypt (rotation: add the new key first, run `herald secrets "
        "reencrypt`, then drop the old). Required in production; elsewhere a key is generated "
        "once into `<data_dir>/encryption-key`",
    )

    @field_validator("encryption_keys")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from app.core.encryption import parse_keys

            parse_keys(value.get_secret_value())
        return value


class TemplateSettings(BaseModel):
    """Bounds of rendering user templates (docs/templates.md, Sandbox and limits)."""

    max_email_bytes: int = Field(
        524_288, ge=1024, description="Rendered email (subject + html + text), UTF-8 bytes"
    )
    max_sms_chars: int = Field(1_600, ge=160, description="Rendered SMS text, characters")
    max_webhook_bytes: int = Field(
        524_288, ge=1024, description="Rendered webhook payload strings, UTF-8 bytes"
    )
    render_timeout_seconds: float = Field(
        1.0, gt=0, le=60, description="A sandboxed render is killed past this wall time"
    )
    render_memory_mib: int = Field(
        256, ge=32, description="Address space a sandbox process may add while rendering"
    )
    sandbox_processes: int = Field(
        2, ge=1, le=32, description="Sandbox processes per API or worker process"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HERALD_",
        env_nested_delimiter="__",
        extra="ignore",
        populate_by_name=True,
    )

    environment: Literal["development", "test", "production"] = "development"
    database_url: SecretStr | None = Field(
        None, validation_alias=AliasChoices("DATABASE_URL", "HERALD_DATABASE_URL")
    )
    redis_url: SecretStr | None = Field(
        None, validation_alias=AliasChoices("REDIS_URL", "HERALD_REDIS_URL")
    )
    port: int = Field(8000, ge=1, le=65535, validation_alias=AliasChoices("PORT", "HERALD_PORT"))
    data_dir: str = Field(".herald", description="Where `herald dev` keeps embedded data")
    db_pool_size: int = Field(10, ge=1)
    http: HttpSettings = HttpSettings()
    logging: LoggingSettings = LoggingSettings()
    worker: WorkerSettings = WorkerSettings()
    idempotency: IdempotencySettings = IdempotencySettings()
    engine: EngineSettings = EngineSettings()
    channels: ChannelSettings = ChannelSettings()
    webhooks: WebhookSettings = WebhookSettings()
    inbound: InboundSettings = InboundSettings()
    metrics: MetricsSettings = MetricsSettings()
    segments: SegmentSettings = SegmentSettings()
    notifications: NotificationSettings = NotificationSettings()
    security: SecuritySettings = SecuritySettings()
    templates: TemplateSettings = TemplateSettings()

    @model_validator(mode="after")
    def _production_secrets(self) -> Settings:
        secret = self.channels.tracking_secret.get_secret_value()
        if self.environment == "production" and secret == DEV_TRACKING_SECRET:
            raise ValueError(
                "HERALD_CHANNELS__TRACKING_SECRET must be set to a random value in production"
            )
        if self.environment == "production" and not self.channels.smtp.verify_certificate:
            raise ValueError(
                "HERALD_CHANNELS__SMTP__VERIFY_CERTIFICATE=false is refused in production: "
                "trust a private CA with HERALD_CHANNELS__SMTP__CA_FILE instead"
            )
        if self.environment == "production" and self.security.encryption_keys is None:
            raise ValueError(
                "HERALD_SECURITY__ENCRYPTION_KEYS must be set in production (comma-separated "
                "Fernet keys; make one with `herald secrets generate-key`): signing secrets "
                "are stored encrypted with it"
            )
        return self

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        scheme = urlsplit(value.get_secret_value()).scheme
        if scheme not in {"postgresql", "postgres", "postgresql+asyncpg"}:
            raise ValueError("must be a postgresql:// URL (Herald runs on PostgreSQL only)")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_only(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        if urlsplit(value.get_secret_value()).scheme not in {"redis", "rediss", "unix"}:
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    def require_database_url(self) -> str:
        if self.database_url is None:
            raise RuntimeError("DATABASE_URL is not set (use `herald dev` for embedded services)")
        return async_database_url(self.database_url.get_secret_value())

    def require_redis_url(self) -> str:
        if self.redis_url is None:
            raise RuntimeError("REDIS_URL is not set (use `herald dev` for embedded services)")
        return self.redis_url.get_secret_value()


def async_database_url(url: str) -> str:
    """Normalise any postgres URL to the asyncpg driver SQLAlchemy needs."""
    scheme, _, rest = url.partition("://")
    if scheme in {"postgresql", "postgres"}:
        return f"postgresql+asyncpg://{rest}"
    return url


def redact_url(url: str) -> str:
    """A URL safe to print: the password is replaced."""
    parts = urlsplit(url)
    if not parts.password:  # none, or empty (the embedded server's `postgres:@`)
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
