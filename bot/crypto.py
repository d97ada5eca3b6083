"""Encryption of stored OpenShock tokens (Fernet from `cryptography`)."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from bot.config import Settings

# A fixed plaintext stored encrypted in the database, so a wrong key is noticed at start-up
# instead of deep inside a command.
KEY_CHECK_PLAINTEXT = b"openshock-discord-bot key check v1"

GENERATE_HINT = (
    'generate one with: python -c "from cryptography.fernet import Fernet; '
    'print(Fernet.generate_key().decode())"'
)


class EncryptionKeyError(Exception):
    """The encryption key is unusable or does not match the stored tokens."""


class WrongKeyError(EncryptionKeyError):
    pass


class TokenCipher:
    """Encrypts and decrypts OpenShock API tokens. The key never leaves this object."""

    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError):
            raise EncryptionKeyError(
                f"SECRET_KEY is not a valid Fernet key (32 url-safe base64 bytes); {GENERATE_HINT}"
            ) from None

    def __repr__(self) -> str:
        return "TokenCipher(<key hidden>)"

    def encrypt(self, token: str) -> bytes:
        return self._fernet.encrypt(token.encode("utf-8"))

    def decrypt(self, blob: bytes) -> str:
        try:
            return self._fernet.decrypt(blob).decode("utf-8")
        except InvalidToken:
            raise WrongKeyError(
                "a stored token could not be decrypted: SECRET_KEY (or DATA_DIR/secret.key) is not "
                "the key the tokens were encrypted with"
            ) from None

    def key_check(self) -> bytes:
        return self.encrypt(KEY_CHECK_PLAINTEXT.decode())

    def verify_key_check(self, blob: bytes) -> None:
        if self.decrypt(blob).encode() != KEY_CHECK_PLAINTEXT:
            raise WrongKeyError("the stored key check does not match SECRET_KEY")


def load_or_create_key(settings: Settings) -> bytes:
    """SECRET_KEY when set; otherwise DATA_DIR/secret.key, generated once with mode 0600."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().strip().encode()
    path: Path = settings.secret_key_path
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    # O_EXCL: two processes starting at once must not overwrite each other's key.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return key
