"""The owner rules their shocker: the linked account that owns a shocker on OpenShock has authority
over every guild share of it, also shares made by another linked account that reaches it through
an OpenShock share. This finds who a member is as an owner: their account on its server, and
the shockers their live list says they own (shares record their owner when they are made; the
live list also covers shares older than that record)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.openshock.hub import HubConnection
from bot.openshock.manager import HubManager
from bot.storage import Storage
from bot.storage.models import Account
from bot.storage.shares import Owner


@dataclass(frozen=True, slots=True)
class OwnerView:
    """A member as the owner of shockers: their account, and their own shockers by the live
    list (id → name; empty while the list is not known)."""

    account: Account
    own: dict[str, str]

    @property
    def owner(self) -> Owner:
        return owner_of(self.account)


def owner_of(account: Account) -> Owner:
    return Owner(account.openshock_user_id, account.api_url)


def live_own_shockers(hub: HubConnection | None) -> dict[str, str]:
    """The account's own shockers (id → name) from the hub's last list, without waiting."""
    directory = hub.shockers if hub is not None else None
    if directory is None:
        return {}
    return {str(known.id): known.name for known in directory.all() if known.is_own}


async def owner_view(storage: Storage, hubs: HubManager, user_id: int) -> OwnerView | None:
    """The member as an owner, or None without a linked account."""
    account = await storage.accounts.by_discord_user(user_id)
    if account is None:
        return None
    return OwnerView(account, live_own_shockers(hubs.get(account.id)))
