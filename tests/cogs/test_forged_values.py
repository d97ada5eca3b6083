"""Values Discord would have bounded, sent by a forged interaction: refused like any other."""

from __future__ import annotations

import pytest

from tests.harness import Harness


@pytest.mark.parametrize("option", ["max_duration", "cooldown"])
@pytest.mark.parametrize("value", [1e308, -1e308])
async def test_a_huge_number_of_seconds_gets_the_range_refusal(
    harness: Harness, option: str, value: float
) -> None:
    admin = harness.discord_user("admin")
    grant = harness.ix.slash(
        "permissions grant",
        {"who": harness.ix.everyone, option: value},
        user=admin,
        admin=True,
        types={"who": "mentionable"},
    )
    await harness.run(grant)
    reply = harness.discord.replies_for(grant)
    assert reply.ephemeral
    assert reply.text.startswith(f"`{option}` must be between ")
    assert await harness.storage.grants.in_guild(harness.discord.guild_id) == []
