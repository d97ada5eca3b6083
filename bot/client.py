"""The Discord client: holds what the cogs need and starts and stops the background work."""

from __future__ import annotations

import gc
import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import Settings, remember_secrets
from bot.domain.text import inert
from bot.logs import OPENSHOCK_TOKEN, account_key, redactor
from bot.openshock.errors import OpenShockError
from bot.openshock.hub import HubTimings
from bot.openshock.manager import HubAccount, HubManager
from bot.openshock.models import HubEvent
from bot.openshock.rest import OpenShockRest
from bot.services.control import ControlService
from bot.services.feed_discord import DiscordPort
from bot.services.feed_service import FeedService
from bot.services.halts import Halt
from bot.services.hub_listener import HubListener
from bot.services.members import MemberDirectory, NotAMember
from bot.services.scheduler import Scheduler
from bot.storage import AccountLinkedElsewhere, Storage
from bot.storage.models import Account
from bot.tree import BotTree

log = logging.getLogger(__name__)


# The bot never joins voice; don't warn about voice libraries at every start.
discord.VoiceClient.warn_nacl = False
discord.VoiceClient.warn_dave = False


class OpenShockBot(commands.AutoShardedBot):
    """One process, many guilds: AutoShardedBot asks Discord how many shards it needs."""

    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        *,
        hub_timings: HubTimings | None = None,
        confirm_timeout: float = 3.0,
    ) -> None:
        intents = discord.Intents.none()
        intents.guilds = True  # channels, roles and our own member, for feed permission checks
        intents.guild_reactions = True  # panel reactions (MESSAGE_REACTION_ADD); not privileged
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            tree_cls=BotTree,
            # Installed to servers only, whatever the developer portal allows: enabling user
            # installs there must not make the commands usable where no admin set limits.
            # (No tree-wide contexts: discord.py merges them into each command's, so a bot-DM
            # default would reach the guild_only commands too.)
            allowed_installs=app_commands.AppInstallationType(guild=True, user=False),
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self.settings = settings
        self.storage = storage
        remember_secrets(settings)  # the Discord token among them, before any request is made
        self.hubs = HubManager(
            on_event=self._on_hub_event,
            wants_event=self._wants_hub_event,
            on_invalid=self._on_account_invalid,
            timings=hub_timings,
        )
        # Who is still a member of which guild, and their display names (no members intent).
        self.members = MemberDirectory(self._fetch_member)
        self.control = ControlService(
            storage, self.hubs, settings, confirm_timeout=confirm_timeout, members=self.members
        )
        # Timers of what happens later (approvals, votes, random mode); each feature re-arms its
        # own from its table when its cog loads.
        self.scheduler = Scheduler()
        # Services that want every hub event of every account (the feeds) add themselves here.
        self.hub_listeners: list[HubListener] = []
        self.feeds = FeedService(
            storage,
            self.hubs.get,
            DiscordPort.of(self),
            retention_days=settings.feed_retention_days,
        )
        self.hub_listeners.append(HubListener(self.feeds.on_hub_event, self.feeds.wants))
        # `python -m bot sync` only registers commands and turns this off.
        self.connect_hubs = True

    async def setup_hook(self) -> None:
        from bot.cogs import COGS

        for cog in COGS:
            await self.add_cog(cog(self))
        if self.connect_hubs:
            self.feeds.start()  # resumes posting what a previous run left pending
            await self.link_operator_account()
            for account in await self.storage.accounts.list_active():
                await self.connect_account(account)
            log.info("Opened %d OpenShock connections", len(self.hubs))
        # Everything built so far lives as long as the process: move it out of the garbage
        # collector's sight, so its full passes (which stall the event loop) walk only what
        # changes. Measured by bench/feed_fanout.py (full passes ~50 ms without it, ~2 ms with).
        gc.freeze()

    async def close(self) -> None:
        await self.scheduler.close()  # nothing scheduled starts while the rest shuts down
        await self.feeds.stop()
        await self.control.close()
        await self.members.close()
        await self.hubs.stop_all()
        await super().close()

    # -- guild members --------------------------------------------------------------------------

    async def _fetch_member(self, guild_id: int, user_id: int) -> dict[str, Any]:
        try:
            return dict(await self.http.get_member(guild_id, user_id))
        except discord.NotFound:
            raise NotAMember() from None

    def dispatch(self, event: str, /, *args: Any, **kwargs: Any) -> None:
        """Whoever uses an interaction in a guild is a member of it at that moment. Noted here,
        while discord.py parses the interaction (before the command's or button's task runs),
        so that a wearer's own command never asks Discord whether they are a member."""
        if event == "interaction":
            interaction = args[0]
            user = interaction.user
            if interaction.guild_id is not None and isinstance(user, discord.Member):
                self.members.note(interaction.guild_id, user.id, user.display_name)
        super().dispatch(event, *args, **kwargs)

    # -- OpenShock accounts ---------------------------------------------------------------------

    async def connect_account(self, account: Account) -> None:
        """Open (or re-open) the hub connection of a linked account, reaching its server only
        as OPENSHOCK_ALLOWED_SERVERS allows today; not at all when it no longer does."""
        reach = self.settings.server_policy.reach(account.api_url)
        if reach is None:
            # The operator narrowed the list since the link. Nothing is deleted: allowing the
            # server again, or a new /account link, brings the account back.
            await self.hubs.stop(account.id)
            log.warning(
                "OpenShock account id %d is not connected: its server %s is no longer allowed "
                "by OPENSHOCK_ALLOWED_SERVERS",
                account.id,
                account.api_url,
            )
            return
        token = self.storage.accounts.token_of(account)
        # Keyed by account: a re-link replaces the old token, an unlink forgets it.
        redactor.remember(account_key(account.id), token, OPENSHOCK_TOKEN)
        await self.hubs.start(HubAccount(account.id, account.api_url, token, reach))

    def account_unlinked(self, account: Account) -> None:
        """An account and its shares are gone: whatever waited to fire on its shockers ends,
        and the feeds let go of what they kept for it."""
        self.control.halts.announce(Halt("unlink", wearer_id=account.discord_user_id))
        self.feeds.forget_account(account.id)

    async def link_operator_account(self) -> None:
        """OPENSHOCK_TOKEN, when set, is linked to the application's owner at every start."""
        if self.settings.openshock_token is None:
            return
        token = self.settings.openshock_token.get_secret_value()
        app = await self.application_info()
        owner = app.team.owner if app.team and app.team.owner else app.owner
        try:
            async with OpenShockRest(self.settings.api_url, token) as rest:
                user = await rest.get_self()
            existing = await self.storage.accounts.by_discord_user(owner.id)
            if (
                existing is not None
                and not existing.is_operator
                and existing.openshock_user_id != str(user.id)
            ):
                # Linking would replace the owner's own account and delete its shares.
                log.warning(
                    "OPENSHOCK_TOKEN was not linked: the application owner has linked another "
                    "OpenShock account (%s) with /account link; unlink it first to use the "
                    "operator token",
                    existing.openshock_name,
                )
                return
            await self.storage.accounts.link(
                discord_user_id=owner.id,
                openshock_user_id=str(user.id),
                openshock_name=user.name,
                api_url=self.settings.api_url,
                token=token,
                is_operator=True,
            )
        except (OpenShockError, AccountLinkedElsewhere) as error:
            log.error("OPENSHOCK_TOKEN could not be linked to the application owner: %s", error)
            return
        log.info("Linked the operator's OpenShock account %s to the application owner", user.name)

    async def _on_account_invalid(self, account_id: int, reason: str) -> None:
        await self.hubs.stop(account_id)
        account = await self.storage.accounts.get(account_id)
        if account is None or not await self.storage.accounts.mark_invalid(account_id, reason):
            return  # unlinked meanwhile, or already told
        log.warning(
            "OpenShock account %s (id %d) is invalid: %s",
            account.openshock_name,
            account_id,
            reason,
        )
        try:
            user = await self.fetch_user(account.discord_user_id)
            await user.send(
                f"OpenShock rejected the API token of your linked account "
                f"**{inert(account.openshock_name)}** ({reason}). "
                "Nothing can be sent to your shockers until you link a new token with "
                "`/account link`."
            )
        except discord.HTTPException as error:
            log.warning(
                "Could not DM user %d about the invalid token: %s", account.discord_user_id, error
            )

    def _wants_hub_event(self, account_id: int, event: HubEvent) -> bool:
        return any(listener.wants(account_id, event) for listener in self.hub_listeners)

    async def _on_hub_event(self, account_id: int, event: HubEvent) -> None:
        """Every hub event of every account that a listener wants passes here."""
        for listener in self.hub_listeners:
            if listener.wants(account_id, event):
                await listener.handle(account_id, event)
