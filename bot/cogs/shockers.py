"""/shockers: wearers choose which shockers this server may use and up to what, pause them and
block members; anyone can list what is usable here and what they may do with it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.common import member_role_ids, seconds_to_ms, types_text
from bot.cogs.options import OwnShocker, Percent, RuledShare, Seconds
from bot.domain.controls import (
    MAX_DURATION_MS,
    MAX_INTENSITY,
    MIN_DURATION_MS,
    MIN_INTENSITY,
    ControlKind,
    format_duration,
)
from bot.domain.decision import ShockerAccess
from bot.domain.text import inert
from bot.errors import UserError
from bot.openshock.models import KnownShocker
from bot.services.accounts import require_account
from bot.services.control.panic import lift_openshock_pauses
from bot.services.halts import Halt
from bot.services.owners import OwnerView, owner_view
from bot.storage import ShockerSharedByOther
from bot.storage.models import Account, FeedKind, Share
from bot.tree import reply

if TYPE_CHECKING:
    from bot.client import OpenShockBot


DEFAULT_INTENSITY = 25
DEFAULT_DURATION_MS = 3000
DESCRIPTION_LIMIT = 4096  # Discord's limit for an embed description

_TYPE_ORDER = (ControlKind.SHOCK, ControlKind.VIBRATE, ControlKind.SOUND, ControlKind.STOP)


def share_types(share: Share) -> str:
    return types_text(share.allow_shock, share.allow_vibrate, share.allow_sound)


def access_text(access: ShockerAccess) -> str:
    """What the caller may do with one shocker, in a few words."""
    if access.refusal is not None:
        return access.refusal.reason
    types = ", ".join(t.verb for t in _TYPE_ORDER if t in access.types) or "nothing"
    who = "You are the wearer: " if access.is_wearer else "You may: "
    parts = [f"{who}{types}"]
    if access.types - {ControlKind.STOP}:
        parts.append(f"up to {access.max_intensity} %, {format_duration(access.max_duration_ms)}")
    if access.cooldown_ms:
        parts.append(f"cooldown {format_duration(access.cooldown_ms)}")
    text = " · ".join(parts) + "."
    if access.undeliverable is not None:
        text += f" Right now: {access.undeliverable.reason}"
    elif access.hold is not None:
        text += f" Right now: {access.hold.reason}"
    elif access.cooldown_remaining_ms > 0:
        text += f" Next control in {format_duration(access.cooldown_remaining_ms)}."
    return text


def _owner_openshock_id(account: Account, known: KnownShocker) -> str | None:
    """Who owns the shocker on OpenShock: the account itself, or whom its server names."""
    if known.is_own:
        return account.openshock_user_id
    return str(known.owner_id) if known.owner_id is not None else None


def _shares_by_others(shares: list[Share]) -> str:
    return ", ".join(f"**{inert(s.shocker_name)}** (shared by <@{s.wearer_id}>)" for s in shares)


def _online_text(online: bool | None) -> str:
    if online is None:
        return "❔ unknown"
    return "🟢 online" if online else "⚫ offline"


@app_commands.guild_only()
class ShockersCog(
    commands.GroupCog, group_name="shockers", description="Your shockers in this server"
):
    def __init__(self, bot: OpenShockBot) -> None:
        self.bot = bot
        self.storage = bot.storage
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        # guild_only only hides the commands in DMs; discord.py does not enforce it.
        if interaction.guild_id is None:
            raise app_commands.NoPrivateMessage()
        return True

    # -- share / unshare ------------------------------------------------------------------------

    @app_commands.command(name="share", description="Make one of your shockers usable here")
    @app_commands.describe(
        shocker="One of your shockers (or one shared with your OpenShock account)",
        max_intensity="Highest intensity in percent (default 25)",
        max_duration="Longest duration in seconds (default 3)",
        shock="Allow shocks (default yes)",
        vibrate="Allow vibrations (default yes)",
        sound="Allow sounds (default yes)",
        approval="Approve each control by others before it is sent (empty: unchanged, off if new)",
    )
    async def share(
        self,
        interaction: discord.Interaction[OpenShockBot],
        shocker: OwnShocker,
        max_intensity: Percent | None = None,
        max_duration: Seconds | None = None,
        shock: bool = True,
        vibrate: bool = True,
        sound: bool = True,
        approval: bool | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        # The shocker option read the lists from OpenShock (answering Discord first).
        if not interaction.response.is_done():
            await interaction.response.defer(ephemeral=True, thinking=True)
        guild_id = interaction.guild_id
        operator = self.bot.settings
        intensity = self._intensity(max_intensity, operator.max_intensity)
        duration_ms = self._duration_ms(max_duration, operator.max_duration_ms)
        if not (shock or vibrate or sound):
            raise UserError(
                "Allow at least one of shock, vibrate or sound. To stop all controls, use "
                "`/shockers pause` or `/shockers unshare`."
            )
        account = await require_account(self.storage, interaction.user.id)
        known = shocker
        existing = await self.storage.shares.get(guild_id, str(known.id))
        try:
            share = await self.storage.shares.share(
                guild_id=guild_id,
                account_id=account.id,
                wearer_id=interaction.user.id,
                shocker_id=str(known.id),
                shocker_name=known.name,
                max_intensity=intensity,
                max_duration_ms=duration_ms,
                allow_shock=shock,
                allow_vibrate=vibrate,
                allow_sound=sound,
                approval=approval,
                owner_openshock_id=_owner_openshock_id(account, known),
            )
        except ShockerSharedByOther as error:
            hint = " As its owner, you can `/shockers unshare` it." if known.is_own else ""
            raise UserError(
                f"This shocker is already shared here by <@{error.wearer_id}>.{hint}"
            ) from None
        verb = "Updated" if existing is not None else "Shared"
        lines = [
            f"{verb} **{inert(share.shocker_name)}** here: up to {share.max_intensity} % and "
            f"{format_duration(share.max_duration_ms)}; {share_types(share)}."
        ]
        if known.limits is not None and (known.limits.intensity or known.limits.duration):
            caps = []
            if known.limits.intensity is not None:
                caps.append(f"{known.limits.intensity} %")
            if known.limits.duration is not None:
                caps.append(format_duration(known.limits.duration))
            lines.append(f"Its OpenShock share also limits it to {' and '.join(caps)}.")
        lines.append(
            "Members need a permission from this server's admins (`/permissions grant`) to "
            "control it. `/shockers pause` stops everything but Stop at once."
        )
        if share.approval:
            lines.append(
                "Approval mode is on: a control by anyone else (Stop aside) is posted as a "
                "request that pings you, with **Approve** and **Deny** buttons only you can use; "
                "nothing is sent unless you approve within a minute."
            )
        if not known.is_own and share.shocker_id in await self.storage.shares.owner_paused_in(
            guild_id
        ):
            lines.append("Its owner has paused it here: only Stop works until they resume it.")
        feed = await self.storage.feeds.get(guild_id, FeedKind.CONTROLS)
        if feed is not None and feed.enabled and known.is_own:
            lines.append(
                f"This server has a controls feed: activity on this shocker (from this bot in "
                f"any server, the OpenShock app or anything else) will be posted in "
                f"<#{feed.channel_id}>."
            )
        elif feed is not None and feed.enabled:
            # OpenShock reports controls (Log) to a shocker's owner only, and the feed posts
            # only what the sharing account itself received.
            lines.append(
                f"This server has a controls feed (<#{feed.channel_id}>), but OpenShock reports "
                f"the activity of this shocker only to its owner, "
                f"{inert(known.owner_name or 'who shared it with you')}, so it is not posted there."
            )
        await reply(interaction, "\n".join(lines))

    @staticmethod
    def _intensity(value: int | None, cap: int) -> int:
        if value is None:
            return min(DEFAULT_INTENSITY, cap)
        if not MIN_INTENSITY <= value <= cap:
            raise UserError(
                f"`max_intensity` must be between {MIN_INTENSITY} and {cap} %"
                + (" (this bot's limit)." if cap < MAX_INTENSITY else ".")
            )
        return value

    @staticmethod
    def _duration_ms(value: float | None, cap_ms: int) -> int:
        if value is None:
            return min(DEFAULT_DURATION_MS, cap_ms)
        ms = seconds_to_ms(
            value, option="max_duration", minimum_ms=MIN_DURATION_MS, maximum_ms=MAX_DURATION_MS
        )
        if ms > cap_ms:
            raise UserError(
                f"`max_duration` must be between {format_duration(MIN_DURATION_MS)} and "
                f"{format_duration(cap_ms)} (this bot's limit)."
            )
        return ms

    @app_commands.command(name="unshare", description="Withdraw one of your shockers from here")
    @app_commands.describe(shocker="A shocker you shared here, or one of yours someone shared here")
    async def unshare(
        self, interaction: discord.Interaction[OpenShockBot], shocker: RuledShare
    ) -> None:
        assert interaction.guild_id is not None
        guild_id, share = interaction.guild_id, shocker
        if share.wearer_id == interaction.user.id:
            await self.storage.shares.unshare(guild_id, interaction.user.id, share.shocker_id)
        else:
            # The owner withdraws the share another account made of their shocker.
            await self.storage.shares.withdraw(guild_id, share.shocker_id)
        self.bot.control.halts.announce(
            Halt("unshare", guild_id=guild_id, shocker_id=share.shocker_id)
        )
        text = (
            f"**{inert(share.shocker_name)}** is no longer usable here; "
            "the admins' permissions for it no longer do anything."
        )
        if share.wearer_id != interaction.user.id:
            text += (
                f" It was shared by <@{share.wearer_id}> through OpenShock, who can share it "
                "here again as long as your OpenShock share with them lasts; `/shockers pause` "
                "(without a shocker) keeps your shockers paused here whoever shares them."
            )
        await reply(interaction, text)

    # -- pause / resume -------------------------------------------------------------------------

    @app_commands.command(name="pause", description="Pause your shockers here: only Stop works")
    @app_commands.describe(shocker="One shocker (leave empty for all of yours here)")
    async def pause(
        self, interaction: discord.Interaction[OpenShockBot], shocker: RuledShare | None = None
    ) -> None:
        assert interaction.guild_id is not None
        guild_id, wearer_id = interaction.guild_id, interaction.user.id
        halts = self.bot.control.halts
        if shocker:
            share = shocker
            if share.wearer_id == wearer_id:
                await self.storage.shares.set_paused(guild_id, wearer_id, share.shocker_id, True)
                text = (
                    f"Paused **{inert(share.shocker_name)}** here: only Stop works until "
                    "`/shockers resume`."
                )
            else:
                view = await self._owner(interaction)
                if view is None:  # unlinked since the option was read
                    raise UserError("Link your OpenShock account again to pause this shocker.")
                await self.storage.shares.pause_as_owner(guild_id, view.owner, [share.shocker_id])
                text = (
                    f"Paused **{inert(share.shocker_name)}** here, shared by "
                    f"<@{share.wearer_id}> through OpenShock: only Stop works until you "
                    "`/shockers resume` it; they cannot lift your pause."
                )
            halts.announce(Halt("pause", guild_id=guild_id, shocker_id=share.shocker_id))
        else:
            await self.storage.shares.pause_wearer(guild_id, wearer_id)
            halts.announce(Halt("pause", guild_id=guild_id, wearer_id=wearer_id))
            text = (
                "Paused all your shockers here, including any you share later: only Stop works "
                "until `/shockers resume`."
            )
            others = await self._pause_owned_here(interaction, guild_id)
            if others:
                text += (
                    f" Also paused here, as their owner: {_shares_by_others(others)}; "
                    "they cannot lift your pause."
                )
        await reply(interaction, text)

    async def _pause_owned_here(
        self, interaction: discord.Interaction[OpenShockBot], guild_id: int
    ) -> list[Share]:
        """Pause every shocker the caller owns in this guild, whoever shares it (now or later);
        returns the shares here made by others, each announced as halted."""
        view = await self._owner(interaction)
        if view is None:
            return []
        owned = await self.storage.shares.owned_shares(view.owner, view.own)
        shocker_ids = set(view.own) | {share.shocker_id for share in owned}
        if shocker_ids:
            await self.storage.shares.pause_as_owner(guild_id, view.owner, shocker_ids)
        others = [
            s
            for s in owned
            if s.guild_id == guild_id and s.wearer_id != view.account.discord_user_id
        ]
        for share in others:
            self.bot.control.halts.announce(
                Halt("pause", guild_id=guild_id, shocker_id=share.shocker_id)
            )
        return others

    @app_commands.command(name="resume", description="Lift a pause of yours here")
    @app_commands.describe(shocker="One shocker (leave empty for all of yours here)")
    async def resume(
        self, interaction: discord.Interaction[OpenShockBot], shocker: RuledShare | None = None
    ) -> None:
        assert interaction.guild_id is not None
        guild_id, wearer_id = interaction.guild_id, interaction.user.id
        view = await self._owner(interaction)
        if shocker:
            share = shocker
            if share.wearer_id == wearer_id:
                await self.storage.shares.set_paused(guild_id, wearer_id, share.shocker_id, False)
            if view is not None:
                await self.storage.shares.resume_as_owner(guild_id, view.owner, share.shocker_id)
            text = f"Resumed **{inert(share.shocker_name)}** here."
            if share.wearer_id == wearer_id and await self.storage.shares.is_wearer_paused(
                guild_id, wearer_id
            ):
                text += (
                    " All your shockers here are still paused, though; "
                    "`/shockers resume` without a shocker lifts that."
                )
            if view is not None and await self.storage.shares.is_owner_panicked(
                view.owner, share.shocker_id
            ):
                text += (
                    " Your /panic still pauses it in every server; `/shockers resume` without "
                    "a shocker lifts that."
                )
            elif share.shocker_id in await self.storage.shares.owner_paused_in(guild_id):
                text += " Its owner has paused it too; only they can lift that."
            self.bot.control.halts.announce_resume(
                Halt("resume", guild_id=guild_id, shocker_id=share.shocker_id)
            )
            await reply(interaction, text)
            return
        lifted = await self.storage.shares.resume_wearer(guild_id, wearer_id)
        lines = []
        if view is not None:
            if await self.storage.shares.lift_owner_panic(view.owner):
                lines.append(
                    "Lifted what /panic paused on your shockers in every server (shares by "
                    "others included); your own shares elsewhere stay paused until you resume "
                    "them there."
                )
            on_openshock = await lift_openshock_pauses(self.storage, self.bot.hubs, view.account)
            if on_openshock.resumed:
                names = ", ".join(f"**{inert(name)}**" for name in on_openshock.resumed)
                lines.append(f"Resumed on OpenShock: {names}.")
            if on_openshock.problem:
                lines.append(f"⚠️ {on_openshock.problem}.")
        first = "Resumed all your shockers here." if lifted else "Nothing of yours was paused here."
        owner_paused = await self.storage.shares.owner_paused_in(guild_id)
        still = [
            share
            for share in await self.storage.shares.of_wearer(wearer_id, guild_id)
            if share.shocker_id in owner_paused
        ]
        if still:
            names = ", ".join(f"**{inert(share.shocker_name)}**" for share in still)
            lines.append(f"Still paused by their owner: {names}; only they can lift that.")
        # This guild's pauses, and /panic's in every guild.
        self.bot.control.halts.announce_resume(Halt("resume", wearer_id=wearer_id))
        await reply(interaction, "\n".join([first, *lines]))

    async def _owner(self, interaction: discord.Interaction[OpenShockBot]) -> OwnerView | None:
        """The caller as the owner of shockers (None without a linked account)."""
        return await owner_view(self.storage, self.bot.hubs, interaction.user.id)

    # -- block / unblock ------------------------------------------------------------------------

    @app_commands.command(
        name="block", description="Stop a member from controlling your shockers here"
    )
    @app_commands.describe(member="The member")
    async def block(
        self, interaction: discord.Interaction[OpenShockBot], member: discord.Member
    ) -> None:
        assert interaction.guild_id is not None
        if member.id == interaction.user.id:
            raise UserError("You cannot block yourself; `/shockers pause` pauses your shockers.")
        if await self.storage.shares.block(interaction.guild_id, interaction.user.id, member.id):
            text = (
                f"Blocked {member.mention}: they can no longer control your shockers here "
                "(only Stop, if the admins allowed them to control)."
            )
        else:
            text = f"{member.mention} was already blocked."
        await reply(interaction, text)

    @app_commands.command(name="unblock", description="Let a blocked member control you again")
    @app_commands.describe(member="The member")
    async def unblock(
        self, interaction: discord.Interaction[OpenShockBot], member: discord.Member
    ) -> None:
        assert interaction.guild_id is not None
        if await self.storage.shares.unblock(interaction.guild_id, interaction.user.id, member.id):
            text = f"Unblocked {member.mention}: the admins' permissions apply to them again."
        else:
            text = f"{member.mention} was not blocked."
        await reply(interaction, text)

    # -- list -----------------------------------------------------------------------------------

    @app_commands.command(name="list", description="Shockers usable here, and what you may do")
    async def list_(self, interaction: discord.Interaction[OpenShockBot]) -> None:
        assert interaction.guild_id is not None
        guild_id = interaction.guild_id
        await interaction.response.defer(ephemeral=True, thinking=True)
        shares = await self.storage.shares.in_guild(guild_id)
        accesses = await self.bot.control.access(
            shares,
            guild_id=guild_id,
            member_id=interaction.user.id,
            role_ids=member_role_ids(interaction.user),
        )
        entries = []
        wearer_paused: dict[int, bool] = {}
        owner_paused = await self.storage.shares.owner_paused_in(guild_id)
        view = await self._owner(interaction)
        # Shares here of shockers the caller owns on OpenShock, made by someone else.
        owned_by_caller = (
            {
                share.shocker_id
                for share in await self.storage.shares.owned_shares(
                    view.owner, view.own, guild_id=guild_id
                )
                if share.wearer_id != interaction.user.id
            }
            if view is not None
            else set()
        )
        for share, access in accesses:
            if share.wearer_id not in wearer_paused:
                wearer_paused[share.wearer_id] = await self.storage.shares.is_wearer_paused(
                    guild_id, share.wearer_id
                )
            online = self.bot.control.facts.share_online(share)
            state = [f"<@{share.wearer_id}>", _online_text(online)]
            if share.paused or wearer_paused[share.wearer_id]:
                state.append("⏸️ paused")
            elif share.shocker_id in owner_paused:
                state.append("⏸️ paused by its owner")
            if share.approval:
                state.append("🙋 asks the wearer first")
            state.append(
                f"≤ {share.max_intensity} %, {format_duration(share.max_duration_ms)}, "
                f"{share_types(share)}"
            )
            entry = f"**{inert(share.shocker_name)}** · {' · '.join(state)}"
            if share.shocker_id in owned_by_caller:
                entry += (
                    f"\n↳ Your shocker, shared here by <@{share.wearer_id}> through OpenShock: "
                    "you can `/shockers pause` or `/shockers unshare` it."
                )
            entries.append(f"{entry}\n↳ {access_text(access)}")
        embed = discord.Embed(
            title="Shockers usable here",
            description=_fit(
                entries,
                "No shocker is shared here yet; wearers share theirs with `/shockers share`.",
            ),
        )
        await reply(interaction, embed=embed)


def _fit(entries: list[str], empty: str, limit: int = DESCRIPTION_LIMIT) -> str:
    if not entries:
        return empty
    out: list[str] = []
    used = 0
    for index, entry in enumerate(entries):
        more = f"… and {len(entries) - index} more"
        if used + len(entry) + 2 + len(more) > limit:
            out.append(more)
            break
        out.append(entry)
        used += len(entry) + 2
    return "\n\n".join(out)
