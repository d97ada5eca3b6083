"""Builders for INTERACTION_CREATE payloads, and :func:`run_interaction` that runs one through a
logged-in discord.py client's real command tree / view store.

    ix = Interactions(api.app_id, api.guild_id, channel=api.channel_id, tree=bot.tree)
    alice = FakeUser.make("alice")
    inter = await run_interaction(bot, ix.slash("shockers share", {"shocker": "abc"}, user=alice))
    assert api.replies_for(inter).ephemeral

Option types are taken from ``types=``, else from the command tree (when ``tree=`` is given: the
real parameter types, including mentionable), else inferred from the Python value (bool, int,
float, str, :class:`FakeUser`, :class:`FakeRole`, :class:`FakeChannel`). User, role, channel and
mentionable options get the ``data.resolved`` entries Discord would send (members in a guild).
"""

from __future__ import annotations

import asyncio
import copy
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tests.fakes.discord_api import (
    ADMINISTRATOR,
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_MEMBER_PERMISSIONS,
    MANAGE_GUILD,
    FakeChannel,
    FakeDiscordAPI,
    FakeRole,
    FakeUser,
    _member_dict,
    register_interaction_payload,
    snowflake,
)

if TYPE_CHECKING:
    import discord
    from discord import app_commands

__all__ = [
    "ADMINISTRATOR",
    "MANAGE_GUILD",
    "OPTION_TYPES",
    "FakeChannel",
    "FakeRole",
    "FakeUser",
    "Interactions",
    "load_guild",
    "run_interaction",
    "run_reaction_add",
]

# Application command option types
OPTION_TYPES = {
    "subcommand": 1,
    "group": 2,
    "string": 3,
    "integer": 4,
    "boolean": 5,
    "user": 6,
    "channel": 7,
    "role": 8,
    "mentionable": 9,
    "number": 10,
    "attachment": 11,
}

# Interaction contexts
GUILD, BOT_DM, PRIVATE_CHANNEL = 0, 1, 2


def _perm_value(perms: Any) -> int:
    return int(getattr(perms, "value", perms))


def _infer_type(value: Any) -> int:
    if isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return 4
    if isinstance(value, float):
        return 10
    if isinstance(value, FakeUser):
        return 6
    if isinstance(value, FakeRole):
        return 8
    if isinstance(value, FakeChannel):
        return 7
    return 3


class Interactions:
    """Builds INTERACTION_CREATE payloads for one application, guild and channel.

    ``guild_id=None`` builds DM-context interactions (``user`` instead of ``member``, a DM
    channel); :meth:`dm` gives a DM-context copy of a guild builder. ``channel`` is the channel the
    interactions happen in (a :class:`FakeChannel`, or an id for a text channel ``#general``).
    ``tree`` (a ``discord.app_commands.CommandTree``) lets option types be read from the real
    commands. ``user`` is the default invoker (default: a fresh ``alice``). Every payload gets a
    unique id and token and is registered with the fake API so it knows the interaction's channel
    and, for components, its message.
    """

    def __init__(
        self,
        app_id: int,
        guild_id: int | None = None,
        *,
        channel: FakeChannel | int | None = None,
        tree: app_commands.CommandTree[Any] | None = None,
        user: FakeUser | None = None,
        locale: str = "en-US",
        guild_locale: str = "en-US",
        app_permissions: int = DEFAULT_BOT_PERMISSIONS,
    ) -> None:
        self.app_id = int(app_id)
        self.guild_id = int(guild_id) if guild_id is not None else None
        if isinstance(channel, FakeChannel):
            self.channel: FakeChannel = channel
        else:
            self.channel = FakeChannel(
                id=int(channel) if channel is not None else snowflake(),
                name="general",
                guild_id=self.guild_id,
            )
        self.tree = tree
        self.user: FakeUser = user or FakeUser.make("alice")
        self.locale = locale
        self.guild_locale = guild_locale
        self.app_permissions = _perm_value(app_permissions)
        self.bot_user = FakeUser(id=self.app_id, username="bot", bot=True)
        self._roles: dict[int, list[int]] = {}
        self._dm_channels: dict[int, int] = {}
        self._command_ids: dict[str, int] = {}

    # ------------------------------------------------------------------ context

    def dm(self) -> Interactions:
        """A copy of this builder that builds DM-context (bot DM) interactions."""
        other = copy.copy(self)
        other.guild_id = None
        return other

    def for_tree(self, tree: app_commands.CommandTree[Any]) -> Interactions:
        """A copy of this builder that reads option types from ``tree`` (``bot.tree``)."""
        other = copy.copy(self)
        other.tree = tree
        return other

    def set_roles(self, user: FakeUser, roles: Iterable[FakeRole | int]) -> None:
        """Default roles of ``user`` (as invoker and as a resolved member option)."""
        self._roles[user.id] = [r.id if isinstance(r, FakeRole) else int(r) for r in roles]

    @property
    def everyone(self) -> FakeRole:
        """The guild's ``@everyone`` role (id == guild id)."""
        if self.guild_id is None:
            raise ValueError("no guild")
        return FakeRole(id=self.guild_id, name="@everyone", position=0)

    def _role_ids(self, user: FakeUser, roles: Iterable[FakeRole | int] | None) -> list[str]:
        if roles is None:
            return [str(r) for r in self._roles.get(user.id, [])]
        return [str(r.id if isinstance(r, FakeRole) else int(r)) for r in roles]

    def _base(
        self,
        type_: int,
        data: dict[str, Any],
        *,
        user: FakeUser | None = None,
        roles: Iterable[FakeRole | int] | None = None,
        perms: Any = None,
        admin: bool = False,
        channel: FakeChannel | None = None,
        locale: str | None = None,
        message: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        user = user or self.user
        iid = snowflake()
        payload: dict[str, Any] = {
            "id": str(iid),
            "application_id": str(self.app_id),
            "type": type_,
            "data": data,
            "token": f"itok-{iid}-{secrets.token_urlsafe(24)}",
            "version": 1,
            "locale": locale or self.locale,
            "app_permissions": str(self.app_permissions),
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if self.guild_id is not None:
            permissions = DEFAULT_MEMBER_PERMISSIONS if perms is None else _perm_value(perms)
            if admin:
                permissions |= MANAGE_GUILD
            ch = channel or self.channel
            ch_dict = ch.to_dict()
            ch_dict.setdefault("guild_id", str(self.guild_id))
            ch_dict["permissions"] = str(permissions)
            member = _member_dict(user, (), None)
            member["roles"] = self._role_ids(user, roles)
            member["permissions"] = str(permissions)
            payload.update(
                guild_id=str(self.guild_id),
                guild={"id": str(self.guild_id), "locale": self.guild_locale, "features": []},
                guild_locale=self.guild_locale,
                channel_id=str(ch.id),
                channel=ch_dict,
                member=member,
                context=GUILD,
                authorizing_integration_owners={"0": str(self.guild_id)},
            )
        else:
            dm_id = self._dm_channels.setdefault(user.id, snowflake())
            ch = channel or FakeChannel(id=dm_id, type=1, recipients=[user])
            payload.update(
                channel_id=str(ch.id),
                channel=ch.to_dict(),
                user=user.to_dict(),
                context=BOT_DM,
                authorizing_integration_owners={"0": "0"},
            )
        if message is not None:
            payload["message"] = dict(message)
        register_interaction_payload(payload)
        return payload

    # ------------------------------------------------------------------ options

    def _declared_types(self, path: Sequence[str]) -> tuple[dict[str, int], int | None]:
        """Option name -> type for the command at ``path`` in the tree, and its guild id if it is a
        guild command."""
        if self.tree is None:
            return {}, None
        import discord

        cmd: Any = None
        cmd_guild: int | None = None
        if self.guild_id is not None:
            cmd = self.tree.get_command(path[0], guild=discord.Object(self.guild_id))
            cmd_guild = self.guild_id if cmd is not None else None
        if cmd is None:
            cmd = self.tree.get_command(path[0])
        for name in path[1:]:
            if cmd is None or not hasattr(cmd, "get_command"):
                return {}, cmd_guild
            cmd = cmd.get_command(name)
        if cmd is None or not hasattr(cmd, "parameters"):
            return {}, cmd_guild
        return {p.display_name: int(p.type.value) for p in cmd.parameters}, cmd_guild

    def _resolved_member(self, user: FakeUser) -> dict[str, Any]:
        member = _member_dict(user, (), None)
        del member["user"]
        member["roles"] = [str(r) for r in self._roles.get(user.id, [])]
        member["permissions"] = str(DEFAULT_MEMBER_PERMISSIONS)
        return member

    def _option(
        self, name: str, value: Any, type_: int, resolved: dict[str, dict[str, Any]] | None
    ) -> dict[str, Any]:
        if type_ in (3,):
            out: Any = str(value)
        elif type_ == 4:
            out = int(value)
        elif type_ == 10:
            out = float(value)
        elif type_ == 5:
            out = bool(value)
        elif type_ in (6, 7, 8, 9, 11):
            out = str(
                getattr(value, "id", None) or (value["id"] if isinstance(value, Mapping) else value)
            )
            if resolved is not None:
                self._resolve(value, type_, resolved)
        else:
            out = value
        return {"type": type_, "name": name, "value": out}

    def _resolve(self, value: Any, type_: int, resolved: dict[str, dict[str, Any]]) -> None:
        if type_ == 11:
            att = dict(value)
            resolved.setdefault("attachments", {})[str(att["id"])] = att
            return
        if isinstance(value, int | str) and not isinstance(value, bool):
            vid = int(value)
            if type_ in (6, 9):
                value = FakeUser(id=vid, username=f"user{vid}")
            elif type_ == 8:
                value = FakeRole(id=vid, name=f"role{vid}")
            else:
                value = FakeChannel(id=vid, name=f"channel{vid}", guild_id=self.guild_id)
        if isinstance(value, FakeUser):
            resolved.setdefault("users", {})[str(value.id)] = value.to_dict()
            if self.guild_id is not None:
                resolved.setdefault("members", {})[str(value.id)] = self._resolved_member(value)
        elif isinstance(value, FakeRole):
            resolved.setdefault("roles", {})[str(value.id)] = value.to_dict()
        elif isinstance(value, FakeChannel):
            ch = value.to_dict()
            ch["permissions"] = str(DEFAULT_BOT_PERMISSIONS)
            resolved.setdefault("channels", {})[str(value.id)] = ch
        else:
            raise TypeError(f"cannot resolve {value!r} as option type {type_}")

    def _command_data(
        self,
        command: str,
        options: Mapping[str, Any] | None,
        types: Mapping[str, int | str] | None,
        *,
        focused: tuple[str, Any] | None = None,
        with_resolved: bool = True,
    ) -> dict[str, Any]:
        path = command.split()
        if not path or len(path) > 3:
            raise ValueError(f"bad command path {command!r}")
        declared, cmd_guild = self._declared_types(path)
        given = {
            k: (OPTION_TYPES[v] if isinstance(v, str) else int(v)) for k, v in (types or {}).items()
        }
        resolved: dict[str, dict[str, Any]] = {}
        leaf: list[dict[str, Any]] = []
        for name, value in (options or {}).items():
            if value is None or (focused is not None and name == focused[0]):
                continue
            type_ = given.get(name) or declared.get(name) or _infer_type(value)
            leaf.append(self._option(name, value, type_, resolved if with_resolved else None))
        if focused is not None:
            fname, fvalue = focused
            ftype = given.get(fname) or declared.get(fname) or 3
            # Discord sends what was typed so far; for numbers that may be a partial string.
            leaf.append({"type": ftype, "name": fname, "value": fvalue, "focused": True})
        nested: list[dict[str, Any]] = leaf
        if len(path) == 3:
            nested = [
                {
                    "type": 2,
                    "name": path[1],
                    "options": [{"type": 1, "name": path[2], "options": leaf}],
                }
            ]
        elif len(path) == 2:
            nested = [{"type": 1, "name": path[1], "options": leaf}]
        data: dict[str, Any] = {
            "id": str(self._command_ids.setdefault(path[0], snowflake())),
            "name": path[0],
            "type": 1,
            "options": nested,
        }
        if cmd_guild is not None:
            data["guild_id"] = str(cmd_guild)
        if resolved:
            data["resolved"] = resolved
        return data

    # ------------------------------------------------------------------ builders

    def slash(
        self,
        command: str,
        options: Mapping[str, Any] | None = None,
        *,
        types: Mapping[str, int | str] | None = None,
        user: FakeUser | None = None,
        roles: Iterable[FakeRole | int] | None = None,
        perms: Any = None,
        admin: bool = False,
        channel: FakeChannel | None = None,
        locale: str | None = None,
    ) -> dict[str, Any]:
        """A slash command (type 2). ``command`` is the path split by spaces
        (``"permissions grant"``, ``"a group sub"``); ``options`` maps option names to values
        (``None`` values are left out, as Discord does). ``perms`` (int or ``discord.Permissions``)
        replaces the member's default permissions; ``admin=True`` adds Manage Server.
        ``types`` overrides option types by name (``{"who": "mentionable"}`` or ``{"who": 9}``).
        """
        data = self._command_data(command, options, types)
        return self._base(
            2,
            data,
            user=user,
            roles=roles,
            perms=perms,
            admin=admin,
            channel=channel,
            locale=locale,
        )

    def autocomplete(
        self,
        command: str,
        focused: str,
        value: Any = "",
        options: Mapping[str, Any] | None = None,
        *,
        types: Mapping[str, int | str] | None = None,
        user: FakeUser | None = None,
        roles: Iterable[FakeRole | int] | None = None,
        perms: Any = None,
        admin: bool = False,
        channel: FakeChannel | None = None,
        locale: str | None = None,
    ) -> dict[str, Any]:
        """An autocomplete request (type 4) for option ``focused`` holding ``value`` (what was typed
        so far); ``options`` are the other options already filled in (no ``resolved``, as Discord).
        """
        data = self._command_data(
            command, options, types, focused=(focused, value), with_resolved=False
        )
        return self._base(
            4,
            data,
            user=user,
            roles=roles,
            perms=perms,
            admin=admin,
            channel=channel,
            locale=locale,
        )

    def _placeholder_message(self, channel: FakeChannel | None) -> dict[str, Any]:
        ch = channel or self.channel
        return {
            "id": str(snowflake()),
            "channel_id": str(ch.id),
            "author": self.bot_user.to_dict(),
            "content": "",
            "timestamp": "2024-01-01T00:00:00+00:00",
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "type": 0,
            "flags": 0,
            "components": [],
        }

    def button(
        self,
        custom_id: str,
        *,
        message: Mapping[str, Any] | None = None,
        user: FakeUser | None = None,
        roles: Iterable[FakeRole | int] | None = None,
        perms: Any = None,
        admin: bool = False,
        channel: FakeChannel | None = None,
        locale: str | None = None,
    ) -> dict[str, Any]:
        """A button click (type 3, component_type 2). ``message`` is the message holding the
        button, e.g. ``api.replies_for(inter).messages[0]`` or ``api.channel_messages(c)[-1]``;
        views sent with a message are only found through that message's id (without one, only
        persistent views with no message id match)."""
        data = {"custom_id": custom_id, "component_type": 2}
        msg = message if message is not None else self._placeholder_message(channel)
        return self._base(
            3,
            data,
            user=user,
            roles=roles,
            perms=perms,
            admin=admin,
            channel=channel,
            locale=locale,
            message=msg,
        )

    def select(
        self,
        custom_id: str,
        values: Sequence[str],
        *,
        message: Mapping[str, Any] | None = None,
        component_type: int = 3,
        resolved: Mapping[str, Any] | None = None,
        user: FakeUser | None = None,
        roles: Iterable[FakeRole | int] | None = None,
        perms: Any = None,
        admin: bool = False,
        channel: FakeChannel | None = None,
    ) -> dict[str, Any]:
        """A select menu choice (type 3; ``component_type`` 3 string select, 5 user, 6 role,
        7 mentionable, 8 channel select: pass ``resolved`` for those)."""
        data: dict[str, Any] = {
            "custom_id": custom_id,
            "component_type": component_type,
            "values": [str(v) for v in values],
        }
        if resolved:
            data["resolved"] = dict(resolved)
        msg = message if message is not None else self._placeholder_message(channel)
        return self._base(
            3, data, user=user, roles=roles, perms=perms, admin=admin, channel=channel, message=msg
        )

    def modal_submit(
        self,
        modal: str | Mapping[str, Any],
        values: Mapping[str, Any],
        *,
        message: Mapping[str, Any] | None = None,
        user: FakeUser | None = None,
        roles: Iterable[FakeRole | int] | None = None,
        perms: Any = None,
        admin: bool = False,
        channel: FakeChannel | None = None,
        locale: str | None = None,
    ) -> dict[str, Any]:
        """A modal submit (type 5).

        ``modal`` is either the modal's ``custom_id`` (then ``values`` maps text-input custom ids to
        values) or the modal as the bot sent it (``api.replies_for(inter).modal``): then keys of
        ``values`` may be a text input's custom id *or its label*, inputs not given submit ``""``,
        and the submitted components mirror the modal's layout (action rows or labels).
        """
        if isinstance(modal, str):
            custom_id = modal
            components = [
                {"type": 1, "components": [{"type": 4, "custom_id": k, "value": str(v)}]}
                for k, v in values.items()
            ]
        else:
            custom_id = modal["custom_id"]
            components = _submitted_components(modal.get("components") or [], values)
        data = {"custom_id": custom_id, "components": components}
        return self._base(
            5,
            data,
            user=user,
            roles=roles,
            perms=perms,
            admin=admin,
            channel=channel,
            locale=locale,
            message=message,
        )


def _submitted_components(
    layout: Sequence[Mapping[str, Any]], values: Mapping[str, Any]
) -> list[dict[str, Any]]:
    used: set[str] = set()
    known: list[str] = []

    def submit(comp: Mapping[str, Any], label: str | None) -> dict[str, Any] | None:
        cid = comp.get("custom_id")
        if cid is None:
            return None
        label = label or comp.get("label")
        known.append(f"{cid!r} ({label!r})")
        key = cid if cid in values else label if label in values else None
        value = values[key] if key is not None else None
        if key is not None:
            used.add(key)
        out: dict[str, Any] = {"type": comp.get("type", 4), "custom_id": cid}
        if comp.get("type", 4) == 4:
            out["value"] = "" if value is None else str(value)
        else:
            out["values"] = [str(v) for v in (value or [])]
        return out

    result: list[dict[str, Any]] = []
    for comp in layout:
        if comp.get("type") == 1:
            inner = [s for c in comp.get("components") or [] if (s := submit(c, None)) is not None]
            if inner:
                result.append({"type": 1, "components": inner})
        elif comp.get("type") == 18 and isinstance(comp.get("component"), Mapping):
            sub = submit(comp["component"], comp.get("label"))
            if sub is not None:
                result.append({"type": 18, "component": sub})
    unknown = set(values) - used
    if unknown:
        raise KeyError(f"modal has no input {sorted(unknown)}; inputs: {', '.join(known)}")
    return result


# ---------------------------------------------------------------------------------------------
# Running an interaction
# ---------------------------------------------------------------------------------------------

# Names discord.py 2.7 gives the tasks that handle an interaction (app_commands/tree.py,
# ui/view.py, ui/modal.py, client.py `_schedule_event`).
_DISPATCH_TASK_PREFIXES = (
    "CommandTree-invoker",
    "discord-ui-view-dispatch-",
    "discord-ui-modal-dispatch-",
    "discord-ui-dynamic-item-",
    "discord.py: ",
)


def _is_dispatch_task(task: asyncio.Task[Any]) -> bool:
    return task.get_name().startswith(_DISPATCH_TASK_PREFIXES)


async def run_interaction(
    bot: discord.Client,
    payload: Mapping[str, Any],
    timeout: float = 5.0,  # noqa: ASYNC109
) -> discord.Interaction[Any]:
    """Feed ``payload`` to a logged-in client as if the gateway had sent INTERACTION_CREATE, wait
    until discord.py has handled it, and return the ``discord.Interaction`` it built (e.g. to check
    ``interaction.command_failed``). What the bot answered is then in the fake API
    (``api.replies_for(payload)``).

    It waits for the tasks discord.py starts for the interaction: ``CommandTree-invoker`` (slash
    commands and autocomplete), ``discord-ui-view-dispatch-*`` (buttons, selects),
    ``discord-ui-modal-dispatch-*`` (modal submits), ``discord-ui-dynamic-item-*`` and event tasks
    ``discord.py: on_*`` (``on_interaction``, ``on_app_command_completion``, ...), including
    such tasks started while waiting. Tasks the bot starts itself (e.g. a background edit of
    the reply) are not waited for: use ``api.wait_for``. Raises ``TimeoutError`` after
    ``timeout`` seconds.

    This relies on private discord.py names — ``ConnectionState.parse_interaction_create``
    (``bot._connection``) and the task names above — checked against discord.py 2.7; the project
    pins ``discord.py~=2.7`` and these tests must run on every upgrade.
    """
    register_interaction_payload(payload)
    loop = asyncio.get_running_loop()
    iid = int(payload["id"])
    waiter = asyncio.ensure_future(
        bot.wait_for("interaction", check=lambda i: i.id == iid, timeout=timeout)
    )
    try:
        await asyncio.sleep(0)  # let wait_for register its listener
        before = asyncio.all_tasks()
        bot._connection.parse_interaction_create(dict(payload))  # type: ignore[arg-type]
        interaction: discord.Interaction[Any] = await waiter
        deadline = loop.time() + timeout
        while True:
            await asyncio.sleep(0)
            pending = [
                t for t in asyncio.all_tasks() - before if not t.done() and _is_dispatch_task(t)
            ]
            if not pending:
                return interaction
            remaining = deadline - loop.time()
            if remaining <= 0:
                names = sorted(t.get_name() for t in pending)
                raise TimeoutError(
                    f"interaction {iid} still being handled after {timeout}s: {names}"
                )
            await asyncio.wait(pending, timeout=remaining)
    finally:
        if not waiter.done():
            waiter.cancel()


async def run_reaction_add(
    bot: discord.Client,
    payload: Mapping[str, Any],
    timeout: float = 5.0,  # noqa: ASYNC109
) -> None:
    """Feed a ``MESSAGE_REACTION_ADD`` payload (``api.reaction_add_payload(...)``) to a logged-in
    client as the gateway would, and wait until the listeners discord.py started for it
    (``discord.py: on_raw_reaction_add`` …) have finished. Tasks they start themselves are not
    waited for. Uses the private ``ConnectionState.parse_message_reaction_add``
    (discord.py~=2.7). The member in the payload becomes a ``discord.Member`` only when the guild
    is in the client's cache (:func:`load_guild`); otherwise ``event.member`` is None.
    """
    loop = asyncio.get_running_loop()
    before = asyncio.all_tasks()
    bot._connection.parse_message_reaction_add(dict(payload))  # type: ignore[arg-type]
    deadline = loop.time() + timeout
    while True:
        await asyncio.sleep(0)
        pending = [t for t in asyncio.all_tasks() - before if not t.done() and _is_dispatch_task(t)]
        if not pending:
            return
        remaining = deadline - loop.time()
        if remaining <= 0:
            names = sorted(t.get_name() for t in pending)
            raise TimeoutError(f"reaction still being handled after {timeout}s: {names}")
        await asyncio.wait(pending, timeout=remaining)


def load_guild(
    bot: discord.Client, api: FakeDiscordAPI, guild_id: int | None = None
) -> discord.Guild:
    """Put the fake's guild (roles, channels, members) in the client's cache, as the gateway's
    GUILD_CREATE would. Without it the cache is empty (no gateway): ``interaction.guild`` is a
    bare "unavailable" guild, ``member.roles`` is empty, ``guild.me``/``permissions_for`` lack
    data, and options annotated ``discord.TextChannel``/``discord.Role``-objects that discord.py
    resolves through the cache fail to transform (``AppCommandChannel`` works either way).
    Call it again after changing the guild in the fake (it replaces the cached guild object).

    Uses the private ``ConnectionState._add_guild_from_data`` (discord.py~=2.7).
    """
    return bot._connection._add_guild_from_data(api.guild_create_payload(guild_id))  # type: ignore[arg-type]
