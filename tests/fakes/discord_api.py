"""A fake Discord REST API, served by aiohttp on 127.0.0.1, for driving the real discord.py.

discord.py is pointed at it by setting ``discord.http.Route.BASE`` to
:attr:`FakeDiscordAPI.base_url` (the ``discord_api`` fixture does that and restores it
afterwards). It speaks enough of the real wire format for ``Client.login`` (``setup_hook``),
application-command responses (callbacks with ``?with_response=1``, deferrals, follow-ups,
editing ``@original``), components, modals, autocomplete, channel messages (with
``nonce``/``enforce_nonce``), DMs, command registration and a few ``GET`` endpoints for guilds,
channels and members.

Everything is recorded (:attr:`FakeDiscordAPI.requests`) and there are test controls for faults
(403/404/500/429 for the next N requests), for a real rate limiter that sends real 429s, and
await-able helpers (:meth:`FakeDiscordAPI.wait_for`, :meth:`FakeDiscordAPI.wait_for_request`).

Details that matter to discord.py (checked against discord.py 2.7):
- a body is parsed as JSON only when ``Content-Type`` is exactly ``application/json``;
- a 429 is retried only when the response has a ``Via`` header and a JSON body with
  ``retry_after`` (otherwise discord.py assumes a Cloudflare ban and raises), so every response
  carries ``Via``;
- every response carries ``X-RateLimit-Limit/Remaining/Reset/Reset-After/Bucket`` so discord.py's
  own rate limiter works (with the limiter on, the values are real);
- a 500 is retried by discord.py up to 5 times, sleeping ``1 + 2 * try`` seconds in between: keep
  ``count`` small when injecting 5xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import re
import socket
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import unquote

from aiohttp import BodyPartReader, WSMsgType, web

__all__ = [
    "ADMINISTRATOR",
    "DEFAULT_BOT_PERMISSIONS",
    "DEFAULT_MEMBER_PERMISSIONS",
    "MANAGE_GUILD",
    "FakeChannel",
    "FakeDiscordAPI",
    "FakeRole",
    "FakeUser",
    "InteractionRecord",
    "RecordedRequest",
    "message_text",
    "overwrite",
    "register_interaction_payload",
    "snowflake",
]

T = TypeVar("T")

DISCORD_EPOCH_MS = 1420070400000
API_PREFIX = "/api/v10"

# Permission bits (https://discord.com/developers/docs/topics/permissions)
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
_VIEW_CHANNEL = 1 << 10
_SEND_MESSAGES = 1 << 11
_EMBED_LINKS = 1 << 14
_ATTACH_FILES = 1 << 15
_READ_MESSAGE_HISTORY = 1 << 16
_USE_EXTERNAL_EMOJIS = 1 << 18
_ADD_REACTIONS = 1 << 6
_USE_APPLICATION_COMMANDS = 1 << 31
DEFAULT_MEMBER_PERMISSIONS = (
    _VIEW_CHANNEL
    | _SEND_MESSAGES
    | _EMBED_LINKS
    | _ATTACH_FILES
    | _READ_MESSAGE_HISTORY
    | _ADD_REACTIONS
    | _USE_EXTERNAL_EMOJIS
    | _USE_APPLICATION_COMMANDS
)
DEFAULT_BOT_PERMISSIONS = (
    _VIEW_CHANNEL
    | _SEND_MESSAGES
    | _EMBED_LINKS
    | _ATTACH_FILES
    | _READ_MESSAGE_HISTORY
    | _ADD_REACTIONS
    | _USE_EXTERNAL_EMOJIS
)

EPHEMERAL = 1 << 6
LOADING = 1 << 7

ERROR_MESSAGES: dict[int, str] = {
    0: "General error",
    10003: "Unknown Channel",
    10004: "Unknown Guild",
    10007: "Unknown Member",
    10008: "Unknown Message",
    10013: "Unknown User",
    10015: "Unknown Webhook",
    10062: "Unknown interaction",
    40060: "Interaction has already been acknowledged.",
    50001: "Missing Access",
    50007: "Cannot send messages to this user",
    50013: "Missing Permissions",
    50035: "Invalid Form Body",
}
_DEFAULT_CODES = {400: 50035, 401: 0, 403: 50013, 404: 0, 500: 0, 502: 0, 503: 0}

_snowflake_counter = itertools.count(1)


def snowflake() -> int:
    """A new, unique, time-ordered Discord snowflake."""
    ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
    return (ms << 22) | (next(_snowflake_counter) & 0x3FFFFF)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


# ---------------------------------------------------------------------------------------------
# Small data model shared with the interaction builders
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeUser:
    """A Discord user. ``FakeUser.make("alice")`` gives a fresh id."""

    id: int
    username: str
    global_name: str | None = None
    bot: bool = False

    @classmethod
    def make(
        cls,
        username: str,
        *,
        id: int | None = None,
        global_name: str | None = None,
        bot: bool = False,
    ) -> FakeUser:
        return cls(
            id=id if id is not None else snowflake(),
            username=username,
            global_name=global_name,
            bot=bot,
        )

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
            "bot": self.bot,
            "system": False,
            "public_flags": 0,
            "flags": 0,
        }


@dataclass(frozen=True)
class FakeRole:
    """A guild role. A role whose id equals the guild id is ``@everyone``."""

    id: int
    name: str
    permissions: int = 0
    position: int = 1
    managed: bool = False
    mentionable: bool = False

    @classmethod
    def make(
        cls, name: str, *, id: int | None = None, permissions: int = 0, position: int = 1
    ) -> FakeRole:
        return cls(
            id=id if id is not None else snowflake(),
            name=name,
            permissions=permissions,
            position=position,
        )

    @property
    def mention(self) -> str:
        return f"<@&{self.id}>"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "managed": self.managed,
            "mentionable": self.mentionable,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }


def overwrite(
    target: FakeRole | FakeUser | int, *, allow: int = 0, deny: int = 0, member: bool | None = None
) -> dict[str, Any]:
    """A permission overwrite for a channel: ``overwrite(role, deny=SEND_MESSAGES)``.

    ``member`` decides the overwrite type for a bare int id (default: role).
    """
    if isinstance(target, FakeUser):
        target_id, kind = target.id, 1
    elif isinstance(target, FakeRole):
        target_id, kind = target.id, 0
    else:
        target_id, kind = int(target), 1 if member else 0
    return {"id": str(target_id), "type": kind, "allow": str(allow), "deny": str(deny)}


@dataclass
class FakeChannel:
    """A channel. ``type``: 0 guild text, 1 DM, 2 voice, 4 category, 5 news, 11 thread."""

    id: int
    name: str = "general"
    type: int = 0
    guild_id: int | None = None
    permission_overwrites: list[dict[str, Any]] = field(default_factory=list)
    position: int = 0
    parent_id: int | None = None
    topic: str | None = None
    nsfw: bool = False
    recipients: list[FakeUser] = field(default_factory=list)

    @classmethod
    def make(cls, name: str = "general", *, id: int | None = None, **kwargs: Any) -> FakeChannel:
        return cls(id=id if id is not None else snowflake(), name=name, **kwargs)

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    def to_dict(self) -> dict[str, Any]:
        if self.type in (1, 3):
            return {
                "id": str(self.id),
                "type": self.type,
                "last_message_id": None,
                "flags": 0,
                "recipients": [u.to_dict() for u in self.recipients],
            }
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "position": self.position,
            "permission_overwrites": list(self.permission_overwrites),
            "parent_id": str(self.parent_id) if self.parent_id else None,
            "topic": self.topic,
            "nsfw": self.nsfw,
            "rate_limit_per_user": 0,
            "last_message_id": None,
            "flags": 0,
        }
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        if self.type in (2, 13):
            data.update(bitrate=64000, user_limit=0, rtc_region=None)
        if self.type in (10, 11, 12):
            data.update(
                owner_id=None,
                thread_metadata={
                    "archived": False,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": _now_iso(),
                    "locked": False,
                },
                message_count=0,
                member_count=0,
            )
        return data


@dataclass
class FakeGuild:
    id: int
    name: str
    owner_id: int
    roles: dict[int, FakeRole] = field(default_factory=dict)
    members: dict[int, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self, channels: Iterable[FakeChannel] = ()) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [r.to_dict() for r in sorted(self.roles.values(), key=lambda r: r.position)],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "approximate_member_count": len(self.members),
            "approximate_presence_count": 0,
        }


def _member_dict(user: FakeUser, roles: Iterable[int], nick: str | None = None) -> dict[str, Any]:
    return {
        "user": user.to_dict(),
        "nick": nick,
        "avatar": None,
        "roles": [str(r) for r in roles],
        "joined_at": "2024-01-01T00:00:00+00:00",
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "communication_disabled_until": None,
    }


# Interaction payloads built by tests.fakes.interactions, looked up by token so the fake knows the
# channel and (for components) the message of an interaction without being told explicitly.
_INTERACTION_PAYLOADS: OrderedDict[str, dict[str, Any]] = OrderedDict()
_MAX_REGISTERED = 10_000


def register_interaction_payload(payload: Mapping[str, Any]) -> None:
    """Remember an INTERACTION_CREATE payload by its token (the builders call this)."""
    _INTERACTION_PAYLOADS[str(payload["token"])] = dict(payload)
    while len(_INTERACTION_PAYLOADS) > _MAX_REGISTERED:
        _INTERACTION_PAYLOADS.popitem(last=False)


def message_text(message: Mapping[str, Any]) -> str:
    """Content plus every text of every embed (title, description, fields, footer, author)."""
    parts: list[str] = []
    if message.get("content"):
        parts.append(str(message["content"]))
    for embed in message.get("embeds") or []:
        for key in ("title", "description"):
            if embed.get(key):
                parts.append(str(embed[key]))
        if (embed.get("author") or {}).get("name"):
            parts.append(str(embed["author"]["name"]))
        for f in embed.get("fields") or []:
            parts.append(f"{f.get('name', '')}: {f.get('value', '')}")
        if (embed.get("footer") or {}).get("text"):
            parts.append(str(embed["footer"]["text"]))
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request the fake received.

    ``path`` is relative to the API base (``/channels/1/messages``);
    ``json`` is the JSON body (for multipart: the ``payload_json`` part); ``files`` holds
    ``(field name, filename, bytes)`` of multipart file parts; ``status`` is what the fake answered.
    """

    method: str
    path: str
    query: dict[str, str]
    json: Any
    headers: dict[str, str]
    files: list[tuple[str, str | None, bytes]] = field(default_factory=list)
    status: int = 0
    at: float = 0.0

    def matches(self, method: str | None = None, path_regex: str | None = None) -> bool:
        if method is not None and self.method != method.upper():
            return False
        return path_regex is None or re.search(path_regex, self.path) is not None


@dataclass
class InteractionRecord:
    """Everything the bot answered to one interaction, as the user would see it.

    ``callbacks`` are the raw callback bodies (normally one: ``{"type": 4, "data": {...}}``);
    ``response_type`` is the first callback's type (4 message, 5 deferred, 6 deferred update,
    7 update, 8 autocomplete, 9 modal); ``messages`` are the current states (after edits) of the
    original response and the follow-ups, in order, leaving out a "thinking..." placeholder that was
    never edited; ``text`` flattens their content and embeds.
    """

    id: int
    token: str
    payload: dict[str, Any] | None
    channel_id: int
    api: FakeDiscordAPI = field(repr=False)
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    original_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)
    component_message_id: int | None = None
    modal: dict[str, Any] | None = None
    choices: list[dict[str, Any]] | None = None
    last_activity: float = 0.0

    @property
    def response_type(self) -> int | None:
        return self.callbacks[0]["type"] if self.callbacks else None

    @property
    def callback(self) -> dict[str, Any] | None:
        return self.callbacks[0] if self.callbacks else None

    @property
    def deferred(self) -> bool:
        return self.response_type in (5, 6)

    @property
    def ephemeral(self) -> bool:
        """Whether the first visible reply (callback, or original after a defer) is ephemeral."""
        cb = self.callback
        if cb is not None and cb["type"] in (4, 5):
            return bool(int((cb.get("data") or {}).get("flags") or 0) & EPHEMERAL)
        msgs = self.messages
        return bool(msgs) and bool(int(msgs[0].get("flags") or 0) & EPHEMERAL)

    @property
    def thinking(self) -> bool:
        """True while a deferred ("thinking...") original response has not been edited yet."""
        if self.original_id is None:
            return False
        msg = self.api.message(self.original_id)
        return msg is not None and bool(int(msg.get("flags") or 0) & LOADING)

    @property
    def original(self) -> dict[str, Any] | None:
        return self.api.message(self.original_id) if self.original_id is not None else None

    @property
    def followups(self) -> list[dict[str, Any]]:
        return [m for m in (self.api.message(i) for i in self.followup_ids) if m is not None]

    @property
    def messages(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        orig = self.original
        if orig is not None and not int(orig.get("flags") or 0) & LOADING:
            out.append(orig)
        out.extend(self.followups)
        return out

    @property
    def content(self) -> str:
        return "\n".join(m["content"] for m in self.messages if m.get("content"))

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return [e for m in self.messages for e in (m.get("embeds") or [])]

    @property
    def components(self) -> list[dict[str, Any]]:
        return [c for m in self.messages for c in (m.get("components") or [])]

    @property
    def text(self) -> str:
        return "\n".join(t for t in (message_text(m) for m in self.messages) if t)

    @property
    def files(self) -> list[tuple[str, bytes]]:
        """``(filename, bytes)`` of every attachment of the reply messages, in order."""
        return [
            (a["filename"], self.api.attachment_data(a))
            for m in self.messages
            for a in m.get("attachments") or []
        ]

    def custom_ids(self) -> list[str]:
        """Every ``custom_id`` of every component in the reply messages (buttons, selects)."""
        found: list[str] = []

        def walk(items: Iterable[Any]) -> None:
            for c in items:
                if isinstance(c, dict):
                    if "custom_id" in c:
                        found.append(c["custom_id"])
                    walk(c.get("components") or [])
                    if isinstance(c.get("component"), dict):
                        walk([c["component"]])
                    if isinstance(c.get("accessory"), dict):
                        walk([c["accessory"]])

        walk(self.components)
        return found


@dataclass
class _Fault:
    status: int
    remaining: int | None
    channel_id: int | None
    method: str | None
    path_re: re.Pattern[str] | None
    code: int | None
    message: str | None
    retry_after: float
    is_global: bool
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.method is not None and self.method != method:
            return False
        if self.channel_id is not None and not re.search(
            rf"^/channels/{self.channel_id}(/|$)", path
        ):
            return False
        return self.path_re is None or self.path_re.search(path) is not None


@dataclass
class _Window:
    start: float
    count: int = 0


class _Reply(Exception):
    """Raised by handlers to answer with ``response`` (errors, faults, 429s)."""

    def __init__(self, response: web.Response) -> None:
        self.response = response


_Handler = Callable[..., Any]


# ---------------------------------------------------------------------------------------------
# The fake
# ---------------------------------------------------------------------------------------------


class FakeDiscordAPI:
    """The fake Discord REST API. ``await api.start()`` / ``await api.stop()``, or use the fixture.

    Pre-configured: an application (:attr:`app_id`) whose bot user is :attr:`bot_user` and whose
    owner is :attr:`owner`; a guild :attr:`guild_id` (owned by the owner, with an ``@everyone``
    role) and a text channel :attr:`channel_id` in it. Posting to channels that were never
    configured works (they are treated as existing text channels); ``GET /channels/{id}`` of an
    unconfigured channel answers 404 Unknown Channel.

    ``token``: when given, requests (other than webhooks and interaction callbacks) must carry
    ``Authorization: Bot <token>``, else 401 (``login`` then raises ``LoginFailure``).
    """

    def __init__(
        self,
        *,
        app_id: int | None = None,
        bot_name: str = "OpenShockBot",
        owner: FakeUser | None = None,
        token: str | None = None,
        app_name: str = "OpenShock Test App",
        team: dict[str, Any] | None = None,
    ) -> None:
        self.app_id: int = app_id if app_id is not None else snowflake()
        self.bot_user = FakeUser(id=self.app_id, username=bot_name, bot=True)
        self.owner: FakeUser = owner or FakeUser.make("owner")
        self.token = token
        self.app_name = app_name
        self.team = team
        self.base_url: str = ""
        self.requests: list[RecordedRequest] = []
        self.gateway_sessions = 0
        self.gateway_identifies = 0
        self.unhandled: list[RecordedRequest] = []
        self.nonce_window: float = 300.0
        self.nonce_dedupes = 0
        self.limiter_429s = 0
        self.created_messages = 0

        self._users: dict[int, FakeUser] = {
            self.bot_user.id: self.bot_user,
            self.owner.id: self.owner,
        }
        self._guilds: dict[int, FakeGuild] = {}
        self._channels: dict[int, FakeChannel] = {}
        self._messages: dict[int, dict[str, Any]] = {}
        self._attachment_data: dict[int, bytes] = {}
        self._channel_message_ids: dict[int, list[int]] = {}
        self._deleted: set[int] = set()
        self._dm_channels: dict[int, int] = {}  # user id -> dm channel id
        # message id -> emoji -> ids of the users whose reaction it is, in order
        self._reactions: dict[int, dict[str, list[int]]] = {}
        self._closed_dms: set[int] = set()
        self._nonces: dict[tuple[int, str], tuple[int, float]] = {}
        self._interactions: dict[str, InteractionRecord] = {}
        self._commands: dict[int | None, list[dict[str, Any]]] = {}
        self._command_ids: dict[tuple[int | None, str, int], int] = {}
        self._faults: list[_Fault] = []
        self._limits: tuple[int, float, int] | None = None
        self._windows: dict[int, _Window] = {}
        self._global_times: deque[float] = deque()
        self._changed: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None

        guild = self.add_guild(name="Test Guild", owner=self.owner)
        self.guild_id: int = guild.id
        self.channel_id: int = self.add_channel("general", guild_id=guild.id).id

        routes: list[tuple[str, str, _Handler]] = [
            ("GET", r"/users/@me", self._get_me),
            ("GET", r"/users/(?P<uid>\d+)", self._get_user),
            ("GET", r"/oauth2/applications/@me", self._get_app),
            ("GET", r"/applications/@me", self._get_app),
            ("POST", r"/interactions/(?P<iid>\d+)/(?P<token>[^/]+)/callback", self._callback),
            ("POST", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)", self._webhook_execute),
            (
                "GET",
                r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<mid>[^/]+)",
                self._webhook_message,
            ),
            (
                "PATCH",
                r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<mid>[^/]+)",
                self._webhook_message,
            ),
            (
                "DELETE",
                r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<mid>[^/]+)",
                self._webhook_message,
            ),
            ("POST", r"/channels/(?P<cid>\d+)/messages", self._create_message),
            ("GET", r"/channels/(?P<cid>\d+)/messages", self._list_messages),
            ("GET", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)", self._channel_message),
            ("PATCH", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)", self._channel_message),
            ("DELETE", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)", self._channel_message),
            (
                "PUT",
                r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)/reactions/(?P<emoji>[^/]+)/@me",
                self._add_reaction,
            ),
            (
                "DELETE",
                r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)/reactions/(?P<emoji>[^/]+)"
                r"/(?P<uid>@me|\d+)",
                self._remove_reaction,
            ),
            ("POST", r"/channels/(?P<cid>\d+)/typing", self._typing),
            ("GET", r"/channels/(?P<cid>\d+)", self._get_channel),
            ("POST", r"/users/@me/channels", self._create_dm),
            ("PUT", r"/applications/(?P<app>\d+)/commands", self._put_commands),
            ("GET", r"/applications/(?P<app>\d+)/commands", self._get_commands),
            ("PUT", r"/applications/(?P<app>\d+)/guilds/(?P<gid>\d+)/commands", self._put_commands),
            ("GET", r"/applications/(?P<app>\d+)/guilds/(?P<gid>\d+)/commands", self._get_commands),
            ("GET", r"/guilds/(?P<gid>\d+)", self._get_guild),
            ("GET", r"/guilds/(?P<gid>\d+)/channels", self._get_guild_channels),
            ("GET", r"/guilds/(?P<gid>\d+)/roles", self._get_guild_roles),
            ("GET", r"/guilds/(?P<gid>\d+)/members/(?P<uid>\d+)", self._get_member),
            ("GET", r"/gateway/bot", self._get_gateway),
            ("GET", r"/gateway", self._get_gateway),
        ]
        self._routes: list[tuple[str, re.Pattern[str], _Handler]] = [
            (method, re.compile(f"^{pattern}$"), handler) for method, pattern, handler in routes
        ]

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> str:
        """Serve on 127.0.0.1 (free port); returns :attr:`base_url` (``http://127.0.0.1:N/api/v10``)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._dispatch)
        app.router.add_get("/gateway", self._gateway)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=0.5
        )
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock)
        await site.start()
        self.base_url = f"http://127.0.0.1:{port}{API_PREFIX}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscordAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ configuration

    def add_user(self, user: FakeUser) -> FakeUser:
        self._users[user.id] = user
        return user

    def add_guild(
        self, *, id: int | None = None, name: str = "Guild", owner: FakeUser | None = None
    ) -> FakeGuild:
        gid = id if id is not None else snowflake()
        owner = owner or self.owner
        guild = FakeGuild(id=gid, name=name, owner_id=owner.id)
        guild.roles[gid] = FakeRole(
            id=gid, name="@everyone", permissions=DEFAULT_MEMBER_PERMISSIONS, position=0
        )
        self._guilds[gid] = guild
        self.add_member(gid, owner)
        self.add_member(gid, self.bot_user)
        return guild

    def guild(self, guild_id: int | None = None) -> FakeGuild:
        return self._guilds[guild_id if guild_id is not None else self.guild_id]

    def add_role(
        self,
        name: str,
        *,
        guild_id: int | None = None,
        permissions: int = 0,
        id: int | None = None,
        position: int | None = None,
    ) -> FakeRole:
        guild = self.guild(guild_id)
        pos = position if position is not None else len(guild.roles)
        role = FakeRole.make(name, id=id, permissions=permissions, position=pos)
        guild.roles[role.id] = role
        return role

    def add_member(
        self,
        guild_id: int | None,
        user: FakeUser,
        roles: Iterable[FakeRole | int] = (),
        *,
        nick: str | None = None,
    ) -> dict[str, Any]:
        """Make ``user`` a member (for ``GET /guilds/{g}/members/{u}``)."""
        self.add_user(user)
        role_ids = [r.id if isinstance(r, FakeRole) else int(r) for r in roles]
        data = _member_dict(user, role_ids, nick)
        self.guild(guild_id).members[user.id] = data
        return data

    def add_channel(
        self,
        name: str = "general",
        *,
        guild_id: int | None = None,
        id: int | None = None,
        type: int = 0,
        permission_overwrites: Iterable[dict[str, Any]] = (),
        **kwargs: Any,
    ) -> FakeChannel:
        """Configure a guild channel (text by default), for ``GET /channels/{id}`` and the guild."""
        channel = FakeChannel.make(
            name,
            id=id,
            type=type,
            guild_id=guild_id if guild_id is not None else self.guild_id,
            permission_overwrites=list(permission_overwrites),
            **kwargs,
        )
        self._channels[channel.id] = channel
        return channel

    def guild_create_payload(self, guild_id: int | None = None) -> dict[str, Any]:
        """The guild as a gateway GUILD_CREATE would carry it: roles, channels, members."""
        guild = self.guild(guild_id)
        data = guild.to_dict()
        data.update(
            channels=[c.to_dict() for c in self._channels.values() if c.guild_id == guild.id],
            members=list(guild.members.values()),
            member_count=len(guild.members),
            large=False,
            unavailable=False,
            joined_at="2024-01-01T00:00:00+00:00",
            voice_states=[],
            presences=[],
            threads=[],
            stage_instances=[],
            guild_scheduled_events=[],
            soundboard_sounds=[],
        )
        return data

    def channel(self, channel_id: int) -> FakeChannel | None:
        return self._channels.get(channel_id)

    def delete_channel(self, channel_id: int) -> None:
        """From now on every request about this channel answers 404 Unknown Channel."""
        self._channels.pop(channel_id, None)
        self.fail_channel(channel_id, 404, count=None)

    def close_dms(self, user_id: int) -> None:
        """The user does not accept DMs: sending to their DM channel answers 403 (code 50007)."""
        self._closed_dms.add(user_id)

    # ------------------------------------------------------------------ test controls

    def fail(
        self,
        status: int,
        *,
        count: int | None = 1,
        channel_id: int | None = None,
        method: str | None = None,
        path: str | None = None,
        code: int | None = None,
        message: str | None = None,
        retry_after: float = 0.05,
        is_global: bool = False,
    ) -> _Fault:
        """Answer the next ``count`` matching requests (``None``: all, until :meth:`clear_faults`)
        with ``status``: 403 (default code 50013 Missing Permissions; 50001 Missing Access),
        404 (10003 Unknown Channel for a channel fault), 500, 429 (JSON ``retry_after`` and
        ``X-RateLimit-*``/``Retry-After`` headers), or a 3xx redirect back to the same address
        (with ``count=None``, a redirect loop). ``path`` is a regex searched in the path
        relative to the API base; ``channel_id`` matches ``/channels/{id}`` and below.
        """
        fault = _Fault(
            status=status,
            remaining=count,
            channel_id=channel_id,
            method=method.upper() if method else None,
            path_re=re.compile(path) if path else None,
            code=code,
            message=message,
            retry_after=retry_after,
            is_global=is_global,
        )
        self._faults.append(fault)
        return fault

    def fail_channel(
        self,
        channel_id: int,
        status: int,
        *,
        count: int | None = 1,
        code: int | None = None,
        message: str | None = None,
        retry_after: float = 0.05,
        method: str | None = None,
    ) -> _Fault:
        """:meth:`fail` for every request under ``/channels/{channel_id}``."""
        if status == 404 and code is None:
            code = 10003
        return self.fail(
            status,
            count=count,
            channel_id=channel_id,
            code=code,
            message=message,
            retry_after=retry_after,
            method=method,
        )

    def clear_faults(self) -> None:
        self._faults.clear()

    def enable_rate_limits(
        self, messages: int = 5, per: float = 5.0, global_per_second: int = 50
    ) -> None:
        """Enforce ``messages`` creates per ``per`` seconds per channel (a fixed window, like
        Discord's ``X-RateLimit-*`` buckets) and ``global_per_second`` requests per second
        overall, answering real 429s (counted in :attr:`limiter_429s`). Headers are exact, so
        discord.py's own limiter avoids the per-channel 429s.
        """
        self._limits = (messages, per, global_per_second)
        self._windows.clear()
        self._global_times.clear()

    def disable_rate_limits(self) -> None:
        self._limits = None

    def register_interaction(self, payload: Mapping[str, Any]) -> None:
        register_interaction_payload(payload)

    # ------------------------------------------------------------------ accessors

    def requests_matching(
        self, method: str | None = None, path_regex: str | None = None
    ) -> list[RecordedRequest]:
        return [r for r in self.requests if r.matches(method, path_regex)]

    def count_429(self) -> int:
        """Every 429 answered (injected and from the limiter)."""
        return sum(1 for r in self.requests if r.status == 429)

    def message(self, message_id: int | str) -> dict[str, Any] | None:
        mid = int(message_id)
        if mid in self._deleted:
            return None
        return self._messages.get(mid)

    def attachment_data(self, attachment: Mapping[str, Any]) -> bytes:
        """The bytes uploaded for an attachment of a recorded message."""
        return self._attachment_data[int(attachment["id"])]

    def channel_messages(self, channel_id: int) -> list[dict[str, Any]]:
        """Current (edited, not deleted) messages in a channel, oldest first.

        Ephemeral interaction replies are not part of a channel.
        """
        ids = self._channel_message_ids.get(int(channel_id), [])
        return [self._messages[i] for i in ids if i not in self._deleted]

    def reactions(self, message_id: int | str) -> dict[str, list[int]]:
        """The reactions on a message: emoji -> ids of the users who reacted, in order (the
        bot's own through ``PUT``, members' through :meth:`reaction_add_payload`)."""
        return {
            emoji: list(users)
            for emoji, users in self._reactions.get(int(message_id), {}).items()
            if users
        }

    def reaction_add_payload(
        self,
        message: Mapping[str, Any],
        user: FakeUser,
        emoji: str,
        *,
        roles: Iterable[FakeRole | int] = (),
        guild_id: int | None = None,
    ) -> dict[str, Any]:
        """A member adds a (unicode) reaction to a message: recorded here, and the gateway's
        ``MESSAGE_REACTION_ADD`` payload returned, with the member and their roles as Discord
        sends them (feed it with ``tests.fakes.interactions.run_reaction_add``)."""
        gid = guild_id if guild_id is not None else self.guild_id
        users = self._reactions.setdefault(int(message["id"]), {}).setdefault(emoji, [])
        if user.id not in users:
            users.append(user.id)
        role_ids = [r.id if isinstance(r, FakeRole) else int(r) for r in roles]
        return {
            "user_id": str(user.id),
            "channel_id": str(message["channel_id"]),
            "message_id": str(message["id"]),
            "guild_id": str(gid),
            "member": _member_dict(user, role_ids),
            "emoji": {"id": None, "name": emoji},
            "message_author_id": str((message.get("author") or {}).get("id", self.app_id)),
            "burst": False,
            "burst_colors": [],
            "type": 0,
        }

    def dm_channel_id(self, user_id: int) -> int | None:
        return self._dm_channels.get(int(user_id))

    def dms(self, user_id: int) -> list[dict[str, Any]]:
        """Messages the bot sent to this user's DM channel."""
        cid = self._dm_channels.get(int(user_id))
        return self.channel_messages(cid) if cid is not None else []

    def callbacks(self) -> list[dict[str, Any]]:
        """Every interaction callback body received (``{"type": 4, "data": {...}}``), in order."""
        return [
            r.json
            for r in self.requests
            if r.method == "POST" and r.path.endswith("/callback") and 200 <= r.status < 300
        ]

    def followups(self) -> list[dict[str, Any]]:
        """Current state of every follow-up message of every interaction, in creation order."""
        recs = sorted(self._interactions.values(), key=lambda r: r.followup_ids[:1] or [0])
        return sorted((m for rec in recs for m in rec.followups), key=lambda m: int(m["id"]))

    def interactions(self) -> list[InteractionRecord]:
        return sorted(self._interactions.values(), key=lambda r: r.last_activity)

    def replies_for(self, interaction: Any) -> InteractionRecord:
        """The record for an interaction: a payload dict, a ``discord.Interaction``, or a token."""
        if isinstance(interaction, str):
            token = interaction
        elif isinstance(interaction, Mapping):
            token = str(interaction["token"])
        else:
            token = str(interaction.token)
        try:
            return self._interactions[token]
        except KeyError:
            raise KeyError(f"the bot never answered the interaction with token {token!r}") from None

    def last_reply(self) -> InteractionRecord:
        """The record of the interaction answered (or followed up / edited) most recently."""
        if not self._interactions:
            raise LookupError("no interaction was answered")
        return max(self._interactions.values(), key=lambda r: r.last_activity)

    def registered_commands(self, guild_id: int | None = None) -> list[dict[str, Any]]:
        """The command list from the last ``PUT`` (global, or for ``guild_id``)."""
        return list(self._commands.get(guild_id, []))

    # ------------------------------------------------------------------ waiting

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(
        self,
        predicate: Callable[[], T | None],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> T:
        """Wait until ``predicate()`` is truthy (re-checked after every request, and every 50 ms);
        returns its value. Raises ``TimeoutError`` after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                recent = [f"{r.method} {r.path} -> {r.status}" for r in self.requests[-10:]]
                raise TimeoutError(f"condition not met within {timeout}s; last requests: {recent}")
            if self._changed is None:
                self._changed = asyncio.Event()
            event = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, 0.05))

    async def wait_for_request(
        self,
        method: str | None,
        path_regex: str | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
        *,
        count: int = 1,
    ) -> RecordedRequest:
        """Wait until ``count`` requests (counting those already received) match, return the
        ``count``-th. ``path_regex`` is searched in the path relative to the API base."""

        def found() -> RecordedRequest | None:
            hits = self.requests_matching(method, path_regex)
            return hits[count - 1] if len(hits) >= count else None

        return await self.wait_for(found, timeout)

    # ------------------------------------------------------------------ plumbing

    def _rl_headers(
        self,
        *,
        limit: int = 50,
        remaining: int = 49,
        reset_after: float = 1.0,
        bucket: str = "fake",
    ) -> dict[str, str]:
        reset_after = math.ceil(max(reset_after, 0.0) * 1000) / 1000
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(remaining, 0)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": bucket,
        }

    def _respond(
        self, status: int, data: Any = None, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        hdrs = {"Via": "1.1 google"}
        hdrs.update(headers or self._rl_headers())
        if status == 204 or data is None:
            return web.Response(status=204 if data is None else status, headers=hdrs)
        hdrs["Content-Type"] = "application/json"
        return web.Response(status=status, body=json.dumps(data).encode(), headers=hdrs)

    def _error(self, status: int, code: int | None = None, message: str | None = None) -> _Reply:
        if code is None:
            code = _DEFAULT_CODES.get(status, 0)
        if message is None:
            message = ERROR_MESSAGES.get(code) if code else None
        if message is None:
            message = f"{status}: {_REASONS.get(status, 'Error')}"
        return _Reply(self._respond(status, {"message": message, "code": code}))

    def _rate_limited(
        self,
        retry_after: float,
        *,
        is_global: bool = False,
        bucket: str = "fake",
        limit: int = 5,
        scope: str | None = None,
    ) -> web.Response:
        retry_after = math.ceil(max(retry_after, 0.001) * 1000) / 1000
        headers = self._rl_headers(limit=limit, remaining=0, reset_after=retry_after, bucket=bucket)
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        headers["X-RateLimit-Scope"] = scope or ("global" if is_global else "user")
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {
            "message": "You are being rate limited.",
            "retry_after": retry_after,
            "global": is_global,
            "code": 0,
        }
        return self._respond(429, body, headers)

    # ------------------------------------------------------------------ gateway (minimal)

    def _get_gateway(self, req: RecordedRequest) -> tuple[int, Any]:
        url = self.base_url.split(API_PREFIX)[0].replace("http://", "ws://") + "/gateway"
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        return 200, {"url": url, "shards": 1, "session_start_limit": limit}

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        """Just enough of the gateway for `Client.start()`: HELLO, READY after IDENTIFY (no
        guilds), heartbeat ACKs. Text frames (discord.py accepts them despite zlib-stream).
        Connections are counted in `gateway_sessions`, identifies in `gateway_identifies`."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.gateway_sessions += 1
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 41250}})
        sequence = 0
        async for message in ws:
            if message.type is not WSMsgType.TEXT:
                continue
            payload = json.loads(message.data)
            if payload.get("op") == 1:
                await ws.send_json({"op": 11, "d": None})
            elif payload.get("op") == 2:
                self.gateway_identifies += 1
                sequence += 1
                shard = payload["d"].get("shard", [0, 1])
                await ws.send_json(
                    {
                        "op": 0,
                        "t": "READY",
                        "s": sequence,
                        "d": {
                            "v": 10,
                            "user": self.bot_user.to_dict(),
                            "guilds": [],
                            "session_id": "fake-session",
                            "resume_gateway_url": str(request.url),
                            "shard": shard,
                            "application": {"id": str(self.app_id), "flags": 0},
                        },
                    }
                )
        return ws

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        body: Any = None
        files: list[tuple[str, str | None, bytes]] = []
        ctype = request.headers.get("Content-Type", "")
        if ctype.startswith("multipart/"):
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    continue
                if part.name == "payload_json":
                    body = json.loads(await part.text())
                else:
                    files.append((part.name or "", part.filename, bytes(await part.read())))
        elif request.can_read_body:
            raw = await request.read()
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
        rec = RecordedRequest(
            method=request.method,
            path=path,
            query=dict(request.query),
            json=body,
            headers=dict(request.headers),
            files=files,
            at=time.monotonic(),
        )
        self.requests.append(rec)
        try:
            response = self._handle(rec)
        except _Reply as reply:
            response = reply.response
        rec.status = response.status
        self._notify()
        return response

    def _handle(self, req: RecordedRequest) -> web.Response:
        is_webhook = req.path.startswith(("/webhooks/", "/interactions/"))
        auth = req.headers.get("Authorization")
        if self.token is not None and not is_webhook and auth != f"Bot {self.token}":
            raise self._error(401, 0, "401: Unauthorized")

        for fault in self._faults:
            if fault.matches(req.method, req.path):
                if fault.remaining is not None:
                    fault.remaining -= 1
                fault.fired += 1
                if fault.status == 429:
                    return self._rate_limited(fault.retry_after, is_global=fault.is_global)
                if 300 <= fault.status < 400:  # a redirect to the same address: a loop
                    return web.Response(
                        status=fault.status, headers={"Location": self.base_url + req.path}
                    )
                code = fault.code
                if code is None and fault.status == 404 and fault.channel_id is not None:
                    code = 10003
                raise self._error(fault.status, code, fault.message)

        rl_headers = self._apply_limits(req)

        for method, pattern, handler in self._routes:
            m = pattern.match(req.path)
            if m and method == req.method:
                status, data, *extra = handler(req, **m.groupdict())
                headers = extra[0] if extra else rl_headers
                return self._respond(status, data, headers)
        self.unhandled.append(req)
        raise self._error(404, 0, "404: Not Found")

    def _apply_limits(self, req: RecordedRequest) -> dict[str, str]:
        """Global and per-channel limits; returns the X-RateLimit headers for the response."""
        is_create = req.method == "POST" and re.match(r"^/channels/\d+/messages$", req.path)
        if self._limits is None:
            if is_create:
                return self._rl_headers(limit=5, remaining=4, reset_after=5.0, bucket="msg-create")
            return self._rl_headers()
        messages, per, global_per_second = self._limits
        if req.path.startswith(("/interactions/", "/webhooks/")):
            # "Interaction endpoints are not bound to the bot's Global Rate Limit" (Discord's
            # rate-limit docs): callbacks and follow-ups to interaction tokens are not counted.
            return self._rl_headers()
        now = time.monotonic()
        times = self._global_times
        while times and now - times[0] >= 1.0:
            times.popleft()
        if len(times) >= global_per_second:
            self.limiter_429s += 1
            raise _Reply(self._rate_limited(1.0 - (now - times[0]), is_global=True))
        times.append(now)
        if not is_create:
            return self._rl_headers()
        cid = int(req.path.split("/")[2])
        window = self._windows.get(cid)
        if window is None or now >= window.start + per:
            window = self._windows[cid] = _Window(start=now)
        reset_after = window.start + per - now
        if window.count >= messages:
            self.limiter_429s += 1
            raise _Reply(
                self._rate_limited(reset_after, bucket="msg-create", limit=messages, scope="user")
            )
        window.count += 1
        return self._rl_headers(
            limit=messages,
            remaining=messages - window.count,
            reset_after=reset_after,
            bucket="msg-create",
        )

    # ------------------------------------------------------------------ messages

    def _new_message(
        self,
        channel_id: int,
        body: Mapping[str, Any],
        files: list[tuple[str, str | None, bytes]],
        *,
        webhook: bool = False,
        flags: int | None = None,
        msg_type: int = 0,
        in_channel: bool = True,
    ) -> dict[str, Any]:
        mid = snowflake()
        msg: dict[str, Any] = {
            "id": str(mid),
            "channel_id": str(channel_id),
            "author": self.bot_user.to_dict(),
            "content": body.get("content") or "",
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "tts": bool(body.get("tts")),
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": self._attachments(body, files, []),
            "embeds": list(body.get("embeds") or []),
            "pinned": False,
            "type": msg_type,
            "flags": int(flags if flags is not None else body.get("flags") or 0),
            "components": list(body.get("components") or []),
        }
        channel = self._channels.get(channel_id)
        if channel is not None and channel.guild_id is not None:
            msg["guild_id"] = str(channel.guild_id)
        for key in ("nonce", "allowed_mentions", "message_reference", "poll"):
            if body.get(key) is not None:
                msg[key] = body[key]
        if webhook:
            msg["webhook_id"] = str(self.app_id)
            msg["application_id"] = str(self.app_id)
        self._messages[mid] = msg
        self.created_messages += 1
        if in_channel and not msg["flags"] & EPHEMERAL:
            self._channel_message_ids.setdefault(channel_id, []).append(mid)
        return msg

    def _attachments(
        self,
        body: Mapping[str, Any],
        files: list[tuple[str, str | None, bytes]],
        existing: list[dict[str, Any]],
    ) -> list[dict[str, Any]]:
        keep_ids = {str(a.get("id")) for a in body.get("attachments") or []}
        out = [a for a in existing if str(a["id"]) in keep_ids]
        for _name, filename, data in files:
            aid = snowflake()
            self._attachment_data[aid] = data
            out.append(
                {
                    "id": str(aid),
                    "filename": filename or "file",
                    "size": len(data),
                    "url": f"https://cdn.invalid/attachments/{aid}/{filename}",
                    "proxy_url": f"https://media.invalid/attachments/{aid}/{filename}",
                    "content_type": "application/octet-stream",
                }
            )
        return out

    def _edit_message(
        self, msg: dict[str, Any], body: Mapping[str, Any] | None, files: list[Any]
    ) -> dict[str, Any]:
        body = body or {}
        if "content" in body:
            msg["content"] = body["content"] or ""
        if "embeds" in body:
            msg["embeds"] = list(body["embeds"] or [])
        if "components" in body:
            msg["components"] = list(body["components"] or [])
        if "allowed_mentions" in body:
            msg["allowed_mentions"] = body["allowed_mentions"]
        if "flags" in body and body["flags"] is not None:
            msg["flags"] = (int(msg.get("flags") or 0) & (EPHEMERAL | LOADING)) | int(body["flags"])
        if "attachments" in body or files:
            msg["attachments"] = self._attachments(body, files, msg.get("attachments") or [])
        if int(msg.get("flags") or 0) & LOADING:
            msg["flags"] = int(msg["flags"]) & ~LOADING
            cid = int(msg["channel_id"])
            if not msg["flags"] & EPHEMERAL and int(msg["id"]) not in self._channel_message_ids.get(
                cid, []
            ):
                self._channel_message_ids.setdefault(cid, []).append(int(msg["id"]))
        msg["edited_timestamp"] = _now_iso()
        return msg

    def _create_message(self, req: RecordedRequest, cid: str) -> tuple[int, Any]:
        channel_id = int(cid)
        body = req.json if isinstance(req.json, dict) else {}
        for uid, dm in self._dm_channels.items():
            if dm == channel_id and uid in self._closed_dms:
                raise self._error(403, 50007)
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            key = (channel_id, str(nonce))
            hit = self._nonces.get(key)
            now = time.monotonic()
            if hit is not None and now - hit[1] < self.nonce_window and hit[0] not in self._deleted:
                self.nonce_dedupes += 1
                return 200, self._messages[hit[0]]
            msg = self._new_message(channel_id, body, req.files)
            self._nonces[key] = (int(msg["id"]), now)
            return 200, msg
        return 200, self._new_message(channel_id, body, req.files)

    def _list_messages(self, req: RecordedRequest, cid: str) -> tuple[int, Any]:
        limit = int(req.query.get("limit", 50))
        msgs = list(reversed(self.channel_messages(int(cid))))
        return 200, msgs[:limit]

    def _channel_message(self, req: RecordedRequest, cid: str, mid: str) -> tuple[int, Any]:
        msg = self.message(mid)
        if msg is None or int(msg["channel_id"]) != int(cid):
            raise self._error(404, 10008)
        if req.method == "GET":
            return 200, msg
        if req.method == "DELETE":
            self._deleted.add(int(mid))
            return 204, None
        return 200, self._edit_message(msg, req.json, req.files)

    def _reacted_message(self, cid: str, mid: str) -> dict[str, Any]:
        msg = self.message(mid)
        if msg is None or int(msg["channel_id"]) != int(cid):
            raise self._error(404, 10008)
        return msg

    def _add_reaction(
        self, req: RecordedRequest, cid: str, mid: str, emoji: str
    ) -> tuple[int, Any]:
        self._reacted_message(cid, mid)
        users = self._reactions.setdefault(int(mid), {}).setdefault(unquote(emoji), [])
        if self.bot_user.id not in users:
            users.append(self.bot_user.id)
        return 204, None

    def _remove_reaction(
        self, req: RecordedRequest, cid: str, mid: str, emoji: str, uid: str
    ) -> tuple[int, Any]:
        self._reacted_message(cid, mid)
        user_id = self.bot_user.id if uid == "@me" else int(uid)
        users = self._reactions.get(int(mid), {}).get(unquote(emoji), [])
        if user_id in users:
            users.remove(user_id)
        return 204, None

    def _typing(self, req: RecordedRequest, cid: str) -> tuple[int, Any]:
        return 204, None

    def _get_channel(self, req: RecordedRequest, cid: str) -> tuple[int, Any]:
        channel = self._channels.get(int(cid))
        if channel is None:
            for uid, dm in self._dm_channels.items():
                if dm == int(cid):
                    return 200, self._dm_dict(uid)
            raise self._error(404, 10003)
        return 200, channel.to_dict()

    def _dm_dict(self, user_id: int) -> dict[str, Any]:
        user = self._users.get(user_id) or FakeUser(id=user_id, username=f"user{user_id}")
        return FakeChannel(id=self._dm_channels[user_id], type=1, recipients=[user]).to_dict()

    def _create_dm(self, req: RecordedRequest) -> tuple[int, Any]:
        uid = int((req.json or {})["recipient_id"])
        if uid not in self._dm_channels:
            self._dm_channels[uid] = snowflake()
        return 200, self._dm_dict(uid)

    # ------------------------------------------------------------------ users, app, guilds

    def _get_me(self, req: RecordedRequest) -> tuple[int, Any]:
        data = self.bot_user.to_dict()
        data.update(verified=True, mfa_enabled=False, locale="en-US", email=None)
        return 200, data

    def _get_user(self, req: RecordedRequest, uid: str) -> tuple[int, Any]:
        user = self._users.get(int(uid))
        if user is None:
            raise self._error(404, 10013)
        return 200, user.to_dict()

    def _get_app(self, req: RecordedRequest) -> tuple[int, Any]:
        return 200, {
            "id": str(self.app_id),
            "name": self.app_name,
            "icon": None,
            "description": "",
            "rpc_origins": [],
            "bot_public": True,
            "bot_require_code_grant": False,
            "bot": self.bot_user.to_dict(),
            "owner": self.owner.to_dict(),
            "team": self.team,
            "verify_key": "0" * 64,
            "flags": 0,
            "summary": "",
            "tags": [],
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "approximate_guild_count": len(self._guilds),
        }

    def _known_guild(self, gid: str) -> FakeGuild:
        guild = self._guilds.get(int(gid))
        if guild is None:
            raise self._error(404, 10004)
        return guild

    def _get_guild(self, req: RecordedRequest, gid: str) -> tuple[int, Any]:
        return 200, self._known_guild(gid).to_dict()

    def _get_guild_channels(self, req: RecordedRequest, gid: str) -> tuple[int, Any]:
        guild = self._known_guild(gid)
        return 200, [c.to_dict() for c in self._channels.values() if c.guild_id == guild.id]

    def _get_guild_roles(self, req: RecordedRequest, gid: str) -> tuple[int, Any]:
        return 200, [r.to_dict() for r in self._known_guild(gid).roles.values()]

    def _get_member(self, req: RecordedRequest, gid: str, uid: str) -> tuple[int, Any]:
        member = self._known_guild(gid).members.get(int(uid))
        if member is None:
            raise self._error(404, 10007)
        return 200, member

    # ------------------------------------------------------------------ commands

    def _put_commands(
        self, req: RecordedRequest, app: str, gid: str | None = None
    ) -> tuple[int, Any]:
        if int(app) != self.app_id:
            raise self._error(403, 50001)
        guild_id = int(gid) if gid is not None else None
        out: list[dict[str, Any]] = []
        for cmd in req.json or []:
            cmd_type = int(cmd.get("type", 1))
            key = (guild_id, cmd["name"], cmd_type)
            cmd_id = self._command_ids.setdefault(key, snowflake())
            stored = {
                "id": str(cmd_id),
                "application_id": str(self.app_id),
                "version": str(snowflake()),
                "type": cmd_type,
                "description": "",
                "default_member_permissions": None,
                "nsfw": False,
                **cmd,
            }
            if guild_id is not None:
                stored["guild_id"] = str(guild_id)
            out.append(stored)
        self._commands[guild_id] = out
        return 200, out

    def _get_commands(
        self, req: RecordedRequest, app: str, gid: str | None = None
    ) -> tuple[int, Any]:
        return 200, self._commands.get(int(gid) if gid is not None else None, [])

    # ------------------------------------------------------------------ interactions

    def _record_for(self, iid: int, token: str) -> InteractionRecord:
        rec = self._interactions.get(token)
        if rec is not None:
            return rec
        payload = _INTERACTION_PAYLOADS.get(token)
        channel_id = 0
        component_message_id = None
        if payload is not None:
            channel = payload.get("channel") or {}
            channel_id = int(channel.get("id") or payload.get("channel_id") or 0)
            message = payload.get("message")
            if isinstance(message, dict) and message.get("id"):
                component_message_id = int(message["id"])
                if component_message_id not in self._messages:
                    self._messages[component_message_id] = json.loads(json.dumps(message))
        rec = InteractionRecord(
            id=iid,
            token=token,
            payload=payload,
            channel_id=channel_id,
            api=self,
            component_message_id=component_message_id,
        )
        self._interactions[token] = rec
        return rec

    def _callback(self, req: RecordedRequest, iid: str, token: str) -> tuple[int, Any]:
        body = req.json if isinstance(req.json, dict) else {}
        rec = self._record_for(int(iid), token)
        if rec.callbacks:
            raise self._error(400, 40060)
        cb_type = int(body.get("type", 0))
        data = body.get("data") or {}
        rec.callbacks.append(body)
        rec.last_activity = time.monotonic()
        payload_type = int((rec.payload or {}).get("type", 2))
        info: dict[str, Any] = {
            "id": str(rec.id),
            "type": payload_type,
            "activity_instance_id": None,
            "response_message_id": None,
            "response_message_loading": False,
            "response_message_ephemeral": False,
        }
        resource: dict[str, Any] = {"type": cb_type}
        if cb_type in (4, 5):
            flags = int(data.get("flags") or 0)
            if cb_type == 5:
                msg = self._new_message(
                    rec.channel_id,
                    {},
                    [],
                    webhook=True,
                    flags=flags | LOADING,
                    msg_type=20,
                    in_channel=False,
                )
            else:
                msg = self._new_message(rec.channel_id, data, req.files, webhook=True, msg_type=20)
            rec.original_id = int(msg["id"])
            info.update(
                response_message_id=msg["id"],
                response_message_loading=cb_type == 5,
                response_message_ephemeral=bool(flags & EPHEMERAL),
            )
            resource["message"] = msg
        elif cb_type in (6, 7):
            if rec.component_message_id is not None:
                rec.original_id = rec.component_message_id
                msg = self._messages[rec.component_message_id]
                if cb_type == 7:
                    self._edit_message(msg, data, req.files)
                info["response_message_id"] = msg["id"]
                resource["message"] = msg
        elif cb_type == 8:
            rec.choices = list(data.get("choices") or [])
        elif cb_type == 9:
            rec.modal = data
        return 200, {"interaction": info, "resource": resource}

    def _webhook_record(self, app: str, token: str) -> InteractionRecord:
        rec = self._interactions.get(token)
        if int(app) != self.app_id or rec is None or not rec.callbacks:
            raise self._error(404, 10015)
        rec.last_activity = time.monotonic()
        return rec

    def _webhook_execute(self, req: RecordedRequest, app: str, token: str) -> tuple[int, Any]:
        rec = self._webhook_record(app, token)
        body = req.json if isinstance(req.json, dict) else {}
        msg = self._new_message(rec.channel_id, body, req.files, webhook=True)
        rec.followup_ids.append(int(msg["id"]))
        if req.query.get("wait") in ("1", "true", "True"):
            return 200, msg
        return 204, None

    def _webhook_message(
        self, req: RecordedRequest, app: str, token: str, mid: str
    ) -> tuple[int, Any]:
        rec = self._webhook_record(app, token)
        if mid == "@original":
            if rec.original_id is None:
                raise self._error(404, 10008)
            message_id = rec.original_id
        else:
            message_id = int(mid)
            if message_id != rec.original_id and message_id not in rec.followup_ids:
                raise self._error(404, 10008)
        msg = self.message(message_id)
        if msg is None:
            raise self._error(404, 10008)
        if req.method == "GET":
            return 200, msg
        if req.method == "DELETE":
            self._deleted.add(message_id)
            return 204, None
        return 200, self._edit_message(msg, req.json, req.files)


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
