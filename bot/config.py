"""Settings read from the environment (and an optional `.env` file).

Every name here is part of the public surface (see the README's configuration table). A missing or
invalid value is reported as one line naming the variable, never as a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# OpenShock's own bounds for one control.
from bot.domain.controls import MAX_DURATION_MS, MAX_INTENSITY, MIN_DURATION_MS, MIN_INTENSITY
from bot.logs import DISCORD_TOKEN, FERNET_KEY, OPENSHOCK_TOKEN, redactor

if TYPE_CHECKING:
    from bot.openshock.servers import ServerPolicy

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings):
    """The operator's configuration. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    discord_token: SecretStr
    openshock_token: SecretStr | None = None
    openshock_api_url: AnyHttpUrl = AnyHttpUrl("https://api.openshock.app")
    # Comma-separated base URLs wearers may link besides the default, or "*" (see servers.py).
    openshock_allowed_servers: str = ""
    data_dir: Path = Path("./data")
    secret_key: SecretStr | None = None
    discord_api_base_url: AnyHttpUrl = AnyHttpUrl("https://discord.com/api/v10")
    max_intensity: int = Field(default=MAX_INTENSITY, ge=MIN_INTENSITY, le=MAX_INTENSITY)
    max_duration_ms: int = Field(default=30_000, ge=MIN_DURATION_MS, le=MAX_DURATION_MS)
    sync_guild_id: int | None = Field(default=None, gt=0)
    log_level: LogLevel = "INFO"
    feed_retention_days: int = Field(default=30, ge=1)

    @field_validator("discord_token", "openshock_token", "secret_key", mode="before")
    @classmethod
    def _blank_is_missing(cls, value: object) -> object:
        # `OPENSHOCK_TOKEN=` in an env file means "not set", not "an empty token".
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("openshock_allowed_servers")
    @classmethod
    def _base_urls_or_star(cls, value: str) -> str:
        from bot.openshock.servers import ANY_PUBLIC, canonical_url  # keeps `check` light

        for entry in value.split(","):
            entry = entry.strip()
            if entry and entry != ANY_PUBLIC:
                try:
                    canonical_url(entry)
                except ValueError:
                    raise ValueError(
                        f"{entry!r} is not a base URL such as https://openshock.example.org "
                        "(or * for any server on a public address)"
                    ) from None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def database_path(self) -> Path:
        return self.data_dir / "bot.db"

    @property
    def secret_key_path(self) -> Path:
        return self.data_dir / "secret.key"

    @property
    def api_url(self) -> str:
        """The default OpenShock base URL without a trailing slash, ready for appending paths."""
        return str(self.openshock_api_url).rstrip("/")

    @property
    def server_policy(self) -> ServerPolicy:
        """Which OpenShock servers wearers may link (the default one always)."""
        from bot.openshock.servers import ServerPolicy

        return ServerPolicy.parse(self.api_url, self.openshock_allowed_servers)

    @property
    def discord_api_url(self) -> str:
        return str(self.discord_api_base_url).rstrip("/")


class ConfigError(Exception):
    """A setting is missing or invalid. The message is one line naming the variable."""


def describe_validation_error(error: ValidationError) -> str:
    """Turn pydantic's report into one line per setting, naming the environment variable."""
    lines = []
    for item in error.errors():
        name = "_".join(str(part) for part in item["loc"]).upper() or "configuration"
        # Never echo the offending value: it may be a secret.
        if item["type"] == "missing":
            lines.append(f"{name} is required but not set.")
        else:
            lines.append(f"{name} is invalid: {item['msg']}.")
    return " ".join(lines)


def remember_secrets(settings: Settings) -> None:
    """Register the configured secrets with the log redactor (each only if it has the shape of
    a real secret of its kind: see bot.logs)."""
    redactor.remember("discord token", settings.discord_token.get_secret_value(), DISCORD_TOKEN)
    if settings.openshock_token is not None:
        redactor.remember(
            "operator openshock token", settings.openshock_token.get_secret_value(), OPENSHOCK_TOKEN
        )
    if settings.secret_key is not None:
        redactor.remember("secret key", settings.secret_key.get_secret_value(), FERNET_KEY)


def load_settings(**overrides: object) -> Settings:
    """Read the settings, raising ConfigError with a clear one-line message when they are bad."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error)) from None
