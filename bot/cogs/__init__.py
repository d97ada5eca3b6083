"""Discord-facing cogs, one per command group. `COGS` is what the bot loads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.cogs.account import AccountCog
from bot.cogs.activity import ActivityCog
from bot.cogs.approvals import ApprovalsCog
from bot.cogs.control import ControlCog
from bot.cogs.device import DeviceCog
from bot.cogs.feed import FeedCog
from bot.cogs.panel import PanelCog
from bot.cogs.permissions import PermissionsCog
from bot.cogs.play import PlayCog
from bot.cogs.random_mode import RandomModeCog
from bot.cogs.shockers import ShockersCog

if TYPE_CHECKING:
    from collections.abc import Callable

    from discord.ext import commands

    from bot.client import OpenShockBot

COGS: list[Callable[[OpenShockBot], commands.Cog]] = [
    PermissionsCog,
    ControlCog,
    AccountCog,
    ShockersCog,
    DeviceCog,
    FeedCog,
    ActivityCog,
    PlayCog,
    ApprovalsCog,
    RandomModeCog,
    PanelCog,
]

__all__: list[Any] = ["COGS"]
