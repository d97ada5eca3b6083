"""Logging set-up, with every known secret redacted from every record."""

from __future__ import annotations

import logging
import re
import sys
import threading
from typing import TextIO

import aiohttp

REDACTED = "[redacted]"

# What a real secret of each kind looks like. Only strings of these shapes are redacted: anything
# looser would let a user who links a "token" such as `Traceback` or a member id hide those words
# from every log line (the server decides what it accepts as a token, not us).
# OpenShock API tokens: 64 characters of [A-Za-z0-9] (CryptoUtils.RandomString in OpenShock/API).
OPENSHOCK_TOKEN = re.compile(r"[A-Za-z0-9]{64}")
# Discord bot tokens: three base64url parts joined by dots (user id, timestamp, HMAC).
DISCORD_TOKEN = re.compile(r"[A-Za-z0-9_-]{17,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{25,}")
# Fernet keys (SECRET_KEY): 32 bytes in url-safe base64.
FERNET_KEY = re.compile(r"[A-Za-z0-9_-]{43}=")


class SecretRedactor(logging.Filter):
    """Replaces registered secrets in log messages, arguments and tracebacks.

    The code never logs tokens on purpose; this is the second line of defence for a third-party
    library or an exception message that echoes one. Each secret is kept under a key (its
    account, "discord token", ...) so that it is forgotten when its account is unlinked or
    re-linked, and only while it has the shape of a real secret of its kind.
    """

    def __init__(self) -> None:
        super().__init__()
        self._by_key: dict[str, str] = {}
        self._secrets: tuple[str, ...] = ()  # a snapshot: read without the lock
        self._lock = threading.Lock()

    def remember(self, key: str, secret: str, shape: re.Pattern[str]) -> bool:
        """Redact ``secret`` from now on, under ``key`` (replacing what the key held before),
        when it has the ``shape`` of a real secret. Returns whether it is redacted."""
        with self._lock:
            accepted = shape.fullmatch(secret) is not None
            if accepted:
                self._by_key[key] = secret
            else:
                self._by_key.pop(key, None)
            self._publish()
        return accepted

    def forget(self, key: str) -> None:
        with self._lock:
            self._by_key.pop(key, None)
            self._publish()

    def _publish(self) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = tuple(sorted(set(self._by_key.values()), key=len, reverse=True))

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        redacted = self.redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            # Format the traceback now, redacted, so the handler prints our copy.
            formatter = logging.Formatter()
            record.exc_text = self.redact(formatter.formatException(record.exc_info))
            record.exc_info = None
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


redactor = SecretRedactor()


def account_key(account_id: int) -> str:
    """The redactor's key for a linked account's OpenShock token."""
    return f"openshock account {account_id}"


def describe_network_error(error: BaseException) -> str:
    """An HTTP client error for a log line: its type and a message that carries no request
    headers. (The ``repr`` of aiohttp's ClientResponseError and TooManyRedirects includes the
    request's headers, ``Authorization: Bot <token>`` among them.)"""
    name = type(error).__name__
    if isinstance(error, aiohttp.ClientResponseError):
        return f"{name} (HTTP {error.status})"
    text = redactor.redact(str(error))
    return f"{name}: {text}" if text else name


def log_handler(stream: TextIO) -> logging.Handler:
    """The handler every record goes through: formatted, with secrets redacted."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-8s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    )
    handler.addFilter(redactor)
    return handler


def setup_logging(level: str) -> None:
    root = logging.getLogger()
    root.handlers[:] = [log_handler(sys.stderr)]
    root.setLevel(level)
    # discord.py's gateway chatter at DEBUG is rarely what an operator wants.
    logging.getLogger("discord.gateway").setLevel(max(logging.INFO, root.level))
