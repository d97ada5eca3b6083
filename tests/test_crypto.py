from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bot.config import Settings
from bot.crypto import EncryptionKeyError, TokenCipher, WrongKeyError, load_or_create_key


def _settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(discord_token="x", data_dir=tmp_path / "data", **extra)  # type: ignore[arg-type]


def test_round_trip_and_ciphertext_hides_the_token() -> None:
    cipher = TokenCipher(Fernet.generate_key())
    blob = cipher.encrypt("my-token-123")
    assert b"my-token-123" not in blob
    assert cipher.decrypt(blob) == "my-token-123"
    assert "key" not in repr(cipher).replace("<key hidden>", "")


def test_wrong_key_is_reported_clearly() -> None:
    blob = TokenCipher(Fernet.generate_key()).encrypt("my-token")
    with pytest.raises(WrongKeyError, match="not the key the tokens were encrypted with"):
        TokenCipher(Fernet.generate_key()).decrypt(blob)


def test_malformed_key_is_reported_with_a_hint() -> None:
    with pytest.raises(EncryptionKeyError, match="SECRET_KEY is not a valid Fernet key"):
        TokenCipher(b"too-short")


def test_generated_key_is_private_and_reused(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    key = load_or_create_key(settings)
    mode = stat.S_IMODE(settings.secret_key_path.stat().st_mode)
    assert mode == 0o600
    assert load_or_create_key(settings) == key
    TokenCipher(key)  # usable


def test_secret_key_setting_wins(tmp_path: Path) -> None:
    key = Fernet.generate_key()
    settings = _settings(tmp_path, secret_key=key.decode())
    assert load_or_create_key(settings) == key
    assert not settings.secret_key_path.exists()
