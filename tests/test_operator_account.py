"""OPENSHOCK_TOKEN: the operator's own account, linked to the application owner at start-up."""

from __future__ import annotations

import logging

import pytest

from tests.harness import Harness


async def test_operator_token_is_linked_to_the_owner_and_connected(harness: Harness) -> None:
    operator = harness.openshock.add_user("Operator")
    await harness.restart(openshock_token=operator.token)
    account = await harness.storage.accounts.by_discord_user(harness.discord.owner.id)
    assert account is not None and account.is_operator
    assert account.openshock_name == "Operator"
    await harness.ready(account.id)
    assert harness.openshock.open_connections(operator)


async def test_operator_token_never_replaces_the_owners_own_link(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    personal = harness.openshock.add_user("Personal")
    await harness.storage.accounts.link(
        discord_user_id=harness.discord.owner.id,
        openshock_user_id=str(personal.id),
        openshock_name="Personal",
        api_url=harness.openshock.base_url,
        token=personal.token,
    )
    operator = harness.openshock.add_user("Operator")
    with caplog.at_level(logging.WARNING):
        await harness.restart(openshock_token=operator.token)
    account = await harness.storage.accounts.by_discord_user(harness.discord.owner.id)
    assert account is not None and account.openshock_name == "Personal"
    assert "OPENSHOCK_TOKEN was not linked" in caplog.text
    assert operator.token not in caplog.text


async def test_a_rejected_operator_token_is_logged_and_the_bot_still_starts(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        await harness.restart(openshock_token="x" * 64)
    assert "OPENSHOCK_TOKEN could not be linked" in caplog.text
    assert "x" * 64 not in caplog.text
    assert await harness.storage.accounts.list_all() == []
