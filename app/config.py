"""Settings, read from the environment and validated once at start.

Top-level aliases (`DATABASE_URL`, `REDIS_URL`, `PORT`) follow platform conventions; everything
else lives in nested sections under the `HERALD_` prefix, e.g. `HERALD_HTTP__MAX_BODY_BYTES`.
Connection strings and keys are `SecretStr`, so they never appear in logs or reprs.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class HttpSettings(BaseModel):
    host: str = "127.0.0.1"
    public_url: str | None = None
    max_body_bytes: int = Field(1_048_576, ge=1024, description="JSON request body limit")
    max_upload_bytes: int = Field(52_428_800, ge=1024, description="File upload body limit")
    rate_limit_per_minute: int = Field(1200, ge=1, description="Requests per API key per minute")
    docs_enabled: bool = True


class LoggingSettings(BaseModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_output: bool = True


class WorkerSettings(BaseModel):
    max_jobs: int = Field(50, ge=1)
    job_timeout_seconds: int = Field(300, ge=1)
    queue_name: str = "herald:queue"


class IdempotencySettings(BaseModel):
    ttl_hours: int = Field(24, ge=1)
    in_flight_timeout_seconds: int = Field(60, ge=1)


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
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
