"""`python -m bot` as a process: it connects to the (fake) gateway, opens the hub connections of
linked accounts, and shuts down cleanly on SIGTERM and SIGINT."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bot.crypto import TokenCipher
from bot.storage import Storage
from tests.fakes.discord_api import FakeDiscordAPI
from tests.fakes.openshock_server import FakeOpenShockServer


def _env(
    tmp_path: Path, api: FakeDiscordAPI, server: FakeOpenShockServer, key: str
) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}}
    return {
        **keep,
        "DISCORD_TOKEN": "test-token",
        "DISCORD_API_BASE_URL": api.base_url,
        "OPENSHOCK_API_URL": server.base_url,
        "DATA_DIR": str(tmp_path / "data"),
        "SECRET_KEY": key,
    }


async def _start(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.mark.timeout(60)
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_the_bot_runs_and_shuts_down_cleanly_on_a_signal(
    tmp_path: Path,
    discord_api: FakeDiscordAPI,
    openshock_server: FakeOpenShockServer,
    stop_signal: signal.Signals,
) -> None:
    key = Fernet.generate_key().decode()
    alice = openshock_server.add_user("Alice")
    storage = await Storage.open(tmp_path / "data" / "bot.db", TokenCipher(key.encode()))
    await storage.accounts.link(
        discord_user_id=1,
        openshock_user_id=str(alice.id),
        openshock_name="Alice",
        api_url=openshock_server.base_url,
        token=alice.token,
    )
    await storage.close()

    process = await _start(_env(tmp_path, discord_api, openshock_server, key), tmp_path)
    try:
        await discord_api.wait_for(lambda: discord_api.gateway_identifies >= 1, timeout=20)
        (connection,) = await openshock_server.wait_for_connections(alice, 1, timeout=20)
        process.send_signal(stop_signal)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    output = (stdout + stderr).decode()
    assert process.returncode == 0, output
    assert "Shutting down" in output
    assert "Traceback" not in output
    assert alice.token not in output and "test-token" not in output
    await asyncio.wait_for(connection.closed.wait(), 5)  # the hub connection was closed


@pytest.mark.timeout(60)
async def test_an_unreachable_gateway_is_one_line(
    tmp_path: Path, discord_api: FakeDiscordAPI, openshock_server: FakeOpenShockServer
) -> None:
    discord_api.fail(404, path="/gateway/bot", count=None)
    env = _env(tmp_path, discord_api, openshock_server, Fernet.generate_key().decode())
    process = await _start(env, tmp_path)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert "Cannot start: Discord's gateway could not be reached" in stdout.decode()
    assert "Traceback" not in (stdout + stderr).decode()
