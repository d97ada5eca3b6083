from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from bot.openshock.servers import Reach

ENV_NAMES = [
    "DISCORD_TOKEN",
    "OPENSHOCK_TOKEN",
    "OPENSHOCK_API_URL",
    "DATA_DIR",
    "SECRET_KEY",
    "DISCORD_API_BASE_URL",
    "MAX_INTENSITY",
    "MAX_DURATION_MS",
    "SYNC_GUILD_ID",
    "LOG_LEVEL",
    "FEED_RETENTION_DAYS",
    "OPENSHOCK_ALLOWED_SERVERS",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "abc.def.ghi")
    settings = load_settings()
    assert settings.api_url == "https://api.openshock.app"
    assert settings.discord_api_url == "https://discord.com/api/v10"
    assert (settings.max_intensity, settings.max_duration_ms) == (100, 30000)
    assert settings.database_path == Path("data/bot.db")
    assert settings.openshock_token is None and settings.sync_guild_id is None
    assert settings.log_level == "INFO"
    assert settings.feed_retention_days == 30


def test_missing_discord_token_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^DISCORD_TOKEN is required but not set\.$"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_INTENSITY", "150"),
        ("MAX_DURATION_MS", "100"),
        ("OPENSHOCK_API_URL", "not a url"),
        ("DISCORD_API_BASE_URL", "ftp://x"),
        ("SYNC_GUILD_ID", "abc"),
        ("LOG_LEVEL", "LOUD"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "abc.def.ghi")
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(f"{name} is invalid")
    assert "\n" not in str(caught.value)


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "DISCORD_TOKEN=from-env-file\nLOG_LEVEL=debug\nOPENSHOCK_TOKEN=\n"
    )
    settings = load_settings()
    assert settings.discord_token.get_secret_value() == "from-env-file"
    assert settings.log_level == "DEBUG"
    assert settings.openshock_token is None


def test_secrets_are_not_shown_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "super-secret-token")
    monkeypatch.setenv("OPENSHOCK_TOKEN", "another-secret-token")
    text = repr(load_settings())
    assert "super-secret-token" not in text and "another-secret-token" not in text


def test_a_secret_value_is_never_echoed_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "abc")
    monkeypatch.setenv("MAX_INTENSITY", "secret-looking-value")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "secret-looking-value" not in str(caught.value)


def test_allowed_servers_default_to_the_default_server_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "abc.def.ghi")
    policy = load_settings().server_policy
    assert policy.reach("https://api.openshock.app/") is Reach.ANY_ADDRESS
    assert policy.reach("https://openshock.example.org") is None


def test_allowed_servers_are_base_urls_or_a_star(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "abc.def.ghi")
    monkeypatch.setenv("OPENSHOCK_ALLOWED_SERVERS", " https://OS.example.org:443/api/ ,*")
    policy = load_settings().server_policy
    assert policy.reach("https://os.example.org/api") is Reach.ANY_ADDRESS
    assert policy.reach("https://os.example.org/other") is Reach.PUBLIC_ONLY

    monkeypatch.setenv("OPENSHOCK_ALLOWED_SERVERS", "https://ok.example.org, ftp://files")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert str(error.value).startswith("OPENSHOCK_ALLOWED_SERVERS is invalid:")
    assert "'ftp://files' is not a base URL" in str(error.value)
