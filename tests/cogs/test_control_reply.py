"""The reply helper works for a button press as for a slash command: a new entry point only builds
an order, submits it and hands the ticket to `answer_control`."""

from __future__ import annotations

from typing import Any

import discord

from bot.cogs.common import sender_of
from bot.cogs.control_reply import answer_control
from bot.domain.controls import ControlKind
from bot.domain.grants import GrantTarget
from bot.services.control import ControlOrder, Origin
from bot.storage.models import AuditOutcome
from tests.harness import Harness


class ShockButton(discord.ui.View):
    """A minimal panel: one persistent button that shocks one shocker as whoever presses it."""

    def __init__(self, shocker_id: str) -> None:
        super().__init__(timeout=None)
        self.shocker_id = shocker_id

    @discord.ui.button(label="Light", custom_id="test-panel:light")
    async def light(self, interaction: discord.Interaction[Any], _: discord.ui.Button[Any]) -> None:
        assert interaction.guild_id is not None
        order = ControlOrder(
            sender=sender_of(interaction),
            guild_id=interaction.guild_id,
            shocker_id=self.shocker_id,
            kind=ControlKind.SHOCK,
            intensity=10,
            duration_ms=1000,
            origin=Origin.BUTTON,
        )
        await answer_control(interaction, await interaction.client.control.submit(order))


async def test_a_button_press_is_a_control_by_the_presser_answered_like_a_command(
    harness: Harness,
) -> None:
    h = harness
    alice_os = h.openshock.add_user("Alice")
    collar = h.openshock.add_shocker(h.openshock.add_device(alice_os, "Hub"), "Collar")
    alice, bob, carol = h.discord_user("alice"), h.discord_user("bob"), h.discord_user("carol")
    await h.link(alice, alice_os)
    await h.share(alice, str(collar.id))
    await h.storage.grants.grant(
        guild_id=h.discord.guild_id,
        target_kind=GrantTarget.MEMBER,
        target_id=bob.id,
        shocker_id=None,
        max_intensity=None,
        max_duration_ms=None,
        cooldown_ms=None,
        allow_shock=True,
        allow_vibrate=True,
        allow_sound=True,
        created_by=alice.id,
    )
    h.bot.add_view(ShockButton(str(collar.id)))

    press = h.ix.button("test-panel:light", user=bob)
    await h.run(press)
    answer = h.discord.replies_for(press)
    assert f"⚡ Shock 10 % · 1 s → Collar (<@{alice.id}>) · ✅ delivered" in answer.text
    assert not answer.ephemeral
    frames = [i for i in h.openshock.invocations if i.target == "ControlV2"]
    assert [f.arguments[1] for f in frames] == ["bob (Discord)"]

    refused = h.ix.button("test-panel:light", user=carol)  # no grant: told to her alone
    await h.run(refused)
    answer = h.discord.replies_for(refused)
    assert answer.ephemeral and "permission" in answer.text
    assert len([i for i in h.openshock.invocations if i.target == "ControlV2"]) == 1
    outcomes = [e.outcome for e in await h.storage.audit.recent(h.discord.guild_id)]
    assert outcomes == [AuditOutcome.REFUSED, AuditOutcome.CONFIRMED]
