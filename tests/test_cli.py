"""`python -m bot` as an operator runs it, in a subprocess with a clean environment."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from bot.storage.migrations import load_migrations


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "SYSTEMROOT"}}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_without_discord_token_it_says_so_in_one_line_and_exits_2(tmp_path: Path) -> None:
    result = _run([], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("Configuration error: DISCORD_TOKEN is required but not set.")
    assert "Traceback" not in result.stderr + result.stdout


def test_an_invalid_value_is_named(tmp_path: Path) -> None:
    result = _run(["migrate"], tmp_path, DISCORD_TOKEN="x", MAX_INTENSITY="150")
    assert result.returncode == 2
    assert result.stderr.startswith("Configuration error: MAX_INTENSITY is invalid")
    assert len(result.stderr.strip().splitlines()) == 1


def test_migrate_creates_the_database_at_the_newest_version(tmp_path: Path) -> None:
    result = _run(["migrate"], tmp_path, DISCORD_TOKEN="x", DATA_DIR=str(tmp_path / "d"))
    assert result.returncode == 0, result.stderr
    newest = load_migrations()[-1].version
    with sqlite3.connect(tmp_path / "d" / "bot.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (newest,)
    assert f"version {newest}" in result.stdout
    again = _run(["migrate"], tmp_path, DISCORD_TOKEN="x", DATA_DIR=str(tmp_path / "d"))
    assert "nothing to apply" in again.stdout


def test_a_database_newer_than_the_code_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with sqlite3.connect(tmp_path / "d" / "bot.db") as conn:
        conn.execute("PRAGMA user_version = 999")
    result = _run(["migrate"], tmp_path, DISCORD_TOKEN="x", DATA_DIR=str(tmp_path / "d"))
    assert result.returncode == 2
    assert "newer release" in result.stderr and "Traceback" not in result.stderr


def test_check_with_nothing_listening_says_what_failed(tmp_path: Path) -> None:
    port = _closed_port()
    result = _run(
        ["check"],
        tmp_path,
        DISCORD_TOKEN="discord-secret-token",
        OPENSHOCK_TOKEN="openshock-secret-token",
        DISCORD_API_BASE_URL=f"http://127.0.0.1:{port}/api/v10",
        OPENSHOCK_API_URL=f"http://127.0.0.1:{port}",
        DATA_DIR=str(tmp_path / "d"),
    )
    assert result.returncode == 1
    assert f"Discord: could not reach http://127.0.0.1:{port}/api/v10" in result.stdout
    assert "OpenShock: The OpenShock server could not be reached" in result.stdout
    output = result.stdout + result.stderr
    assert "discord-secret-token" not in output and "openshock-secret-token" not in output
    assert "Traceback" not in output


def test_a_wrong_secret_key_refuses_to_start(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    data = str(tmp_path / "d")
    first = _run(
        ["sync"],
        tmp_path,
        DISCORD_TOKEN="x",
        DATA_DIR=data,
        DISCORD_API_BASE_URL=f"http://127.0.0.1:{_closed_port()}",
    )
    assert (tmp_path / "d" / "secret.key").exists(), first.stderr
    result = _run(
        ["sync"],
        tmp_path,
        DISCORD_TOKEN="x",
        DATA_DIR=data,
        SECRET_KEY=Fernet.generate_key().decode(),
    )
    assert result.returncode == 2
    assert "not the key" in result.stderr or "does not match" in result.stderr
