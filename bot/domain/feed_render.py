"""What the feeds say: the renderer's inputs for each feed event and the text posted for it.

Plain data and functions, testable without Discord or a database. These models are not what is
stored: the feed service stores versioned payloads (`bot.storage.feed_payloads`) when a hub event
arrives and makes these inputs from them when it posts, so fields here can be renamed freely and a
post made after a restart reads exactly like one made at once.

Every name that comes from outside the bot (OpenShock account, custom and shocker names, device
names, error messages) goes through `inert()`: markdown is escaped and mentions are broken, so a
name like ``@everyone`` or ``**x**`` is shown as typed and never formats or pings; and it is cut
to a length, so no outside text can push a post past Discord's limits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from bot.domain.render import BOT_NAME_SUFFIX
from bot.domain.text import MAX_NAME_CHARS, clip, inert

__all__ = [
    "BOT_NAME_SUFFIX",
    "MAX_DESCRIPTION_CHARS",
    "MAX_MESSAGE_CHARS",
    "MAX_NAME_CHARS",
    "MAX_POST_CHARS",
    "ControlsEntry",
    "DeviceChange",
    "LoggedControl",
    "OtaEvent",
    "OtaOutcome",
    "OtaPhase",
    "OtaView",
    "Post",
    "clip",
    "fold_ota",
    "inert",
    "pack_lines",
    "progress_bar",
    "render_controls",
    "render_device_change",
    "render_ota",
]

# An embed description holds 4096 characters; keep room for a "… more" line.
MAX_POST_CHARS = 3900
MAX_DESCRIPTION_CHARS = 4096
# An update's failure message is free text from the firmware.
MAX_MESSAGE_CHARS = 1000

# Embed colours, by what a post is about.
COLOUR_CONTROLS = 0x5865F2
COLOUR_DEVICES = 0x95A5A6
COLOUR_UPDATE_RUNNING = 0x3498DB
COLOUR_UPDATE_OK = 0x2ECC71
COLOUR_UPDATE_FAILED = 0xE74C3C
COLOUR_UPDATE_ROLLBACK = 0xE67E22


class _Input(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


def _timestamp(at: float) -> str:
    # Discord shows <t:…:T> in each reader's own time zone.
    return f"<t:{int(at)}:T>"


def _seconds(ms: int) -> str:
    return f"{ms / 1000:g} s"


# --- Controls --------------------------------------------------------------------------------


class LoggedControl(_Input):
    """One control from a ``Log`` event, with the values OpenShock executed."""

    shocker_id: str
    shocker_name: str
    type: int  # 0 Stop, 1 Shock, 2 Vibrate, 3 Sound
    intensity: int
    duration_ms: int
    executed_at: float  # unix seconds


class ControlsEntry(_Input):
    """One ``Log`` event: who sent it, whose shockers, and which guild may see which.

    ``shockers_by_guild`` is decided when the event arrives (the shares at that moment), so a
    guild only ever sees controls of shockers shared there.
    """

    sender_name: str  # the OpenShock account that sent it: never shown (privacy)
    custom_name: str | None  # the label the sender chose
    from_bot: bool  # sent through this bot's own hub connection
    wearer_id: int | None  # the Discord user who linked the receiving account
    controls: list[LoggedControl]
    shockers_by_guild: dict[int, list[str]]
    sender_discord_id: int | None = None  # the Discord user who linked the sending account

    def for_guild(self, guild_id: int) -> list[LoggedControl]:
        visible = set(self.shockers_by_guild.get(guild_id, ()))
        return [control for control in self.controls if control.shocker_id in visible]

    @property
    def who(self) -> str:
        """Who sent it, by their Discord identity, never their OpenShock account name: the
        bot's own controls by the member's name it put in the custom name; others by the
        Discord user who linked the sending account (with the custom name the sending app
        chose, when it chose one), else that custom name, else "an OpenShock user"."""
        if self.from_bot:
            name = (self.custom_name or "").removesuffix(BOT_NAME_SUFFIX)
            if name:
                return f"**{inert(name)}** via Discord (this bot)"
            if self.sender_discord_id is not None:
                return f"<@{self.sender_discord_id}> via Discord (this bot)"
            return "a member via Discord (this bot)"
        if self.sender_discord_id is not None:
            if self.custom_name:
                return (
                    f"**{inert(self.custom_name)}** (through <@{self.sender_discord_id}>'s "
                    "OpenShock account)"
                )
            return f"<@{self.sender_discord_id}>"
        if self.custom_name:
            return f"**{inert(self.custom_name)}**"
        return "an OpenShock user"


_CONTROL_LABELS = {
    0: ("⏹️", "Stop"),
    1: ("⚡", "Shock"),
    2: ("〰️", "Vibrate"),
    3: ("🔊", "Sound"),
}


def render_control(entry: ControlsEntry, control: LoggedControl) -> str:
    emoji, label = _CONTROL_LABELS.get(control.type, ("❔", f"Control type {control.type}"))
    what = f"{emoji} **{label}**"
    if control.type != 0:
        what += f" {control.intensity} % · {_seconds(control.duration_ms)}"
    target = f"**{inert(control.shocker_name)}**"
    if entry.wearer_id is not None:
        target += f" (<@{entry.wearer_id}>)"
    return f"{_timestamp(control.executed_at)} {what} → {target} · by {entry.who}"


def render_controls(entry: ControlsEntry, guild_id: int) -> list[str]:
    """The lines one ``Log`` event shows in one guild's controls feed (none if nothing there)."""
    return [render_control(entry, control) for control in entry.for_guild(guild_id)]


# --- Devices ---------------------------------------------------------------------------------


class DeviceChange(_Input):
    """A real change of a device: online state and/or firmware."""

    device_id: str
    device_name: str | None
    online_before: bool | None
    online: bool
    firmware_before: str | None
    firmware: str | None
    at: float

    @property
    def online_changed(self) -> bool:
        return self.online_before is not None and self.online_before != self.online

    @property
    def firmware_changed(self) -> bool:
        return (
            self.firmware_before is not None
            and self.firmware is not None
            and self.firmware_before != self.firmware
        )


def render_device_change(change: DeviceChange) -> list[str]:
    name = f"**{inert(change.device_name)}**" if change.device_name else "A device"
    when = _timestamp(change.at)
    lines = []
    if change.online_changed or (change.online_before is None and change.online):
        if change.online:
            firmware = f" (firmware {inert(change.firmware)})" if change.firmware else ""
            lines.append(f"{when} 🟢 {name} is online{firmware}")
        else:
            lines.append(f"{when} 🔴 {name} went offline")
    if change.firmware_changed:
        assert change.firmware_before is not None and change.firmware is not None
        lines.append(
            f"{when} 🔁 {name} firmware {inert(change.firmware_before)} → {inert(change.firmware)}"
        )
    return lines


# --- Firmware updates ------------------------------------------------------------------------


class OtaPhase(StrEnum):
    STARTED = "started"
    PROGRESS = "progress"
    FAILED = "failed"
    ROLLBACK = "rollback"
    SUCCEEDED = "succeeded"


class OtaEvent(_Input):
    """One OTA hub event (the fields its phase has; the others stay empty)."""

    phase: OtaPhase
    device_id: str
    device_name: str | None = None
    update_id: int
    version: str | None = None
    task: int | None = None
    percent: float | None = None
    fatal: bool | None = None
    message: str | None = None
    at: float


OtaOutcome = Literal["running", "succeeded", "failed", "rolled_back"]

TASK_NAMES = (
    "Fetching metadata",
    "Preparing for update",
    "Flashing filesystem",
    "Verifying filesystem",
    "Flashing application",
    "Marking application bootable",
    "Rebooting",
)


def task_name(task: int) -> str:
    return TASK_NAMES[task] if 0 <= task < len(TASK_NAMES) else f"Step {task}"


@dataclass(frozen=True)
class OtaView:
    """Everything known about one update, folded from its events in order."""

    device_name: str | None = None
    version: str | None = None
    task: int | None = None
    percent: float = 0.0
    outcome: OtaOutcome = "running"
    fatal: bool | None = None
    message: str | None = None
    started_at: float | None = None

    @property
    def finished(self) -> bool:
        return self.outcome != "running"


def fold_ota(events: Iterable[OtaEvent]) -> OtaView:
    view = OtaView()
    for event in events:
        if event.device_name:
            view = replace(view, device_name=event.device_name)
        if view.started_at is None:
            view = replace(view, started_at=event.at)
        if event.phase is OtaPhase.STARTED:
            view = replace(view, version=event.version)
        elif event.phase is OtaPhase.PROGRESS:
            if not view.finished and event.task is not None:
                view = replace(view, task=event.task, percent=event.percent or 0.0)
        elif event.phase is OtaPhase.FAILED:
            view = replace(view, outcome="failed", fatal=event.fatal, message=event.message)
        elif event.phase is OtaPhase.ROLLBACK:
            view = replace(view, outcome="rolled_back")
        elif event.phase is OtaPhase.SUCCEEDED:
            view = replace(view, outcome="succeeded")
    return view


def progress_bar(percent: float, width: int = 20) -> str:
    percent = max(0.0, min(100.0, percent))
    filled = round(percent / 100 * width)
    return "█" * filled + "░" * (width - filled)


@dataclass(frozen=True)
class Post:
    """A rendered post: the service turns it into an embed."""

    title: str | None
    description: str
    colour: int


def render_ota(view: OtaView) -> Post:
    device = f"**{inert(view.device_name)}**" if view.device_name else "a device"
    version = f" to **{inert(view.version)}**" if view.version else ""
    title = "Firmware update"
    if view.outcome == "succeeded":
        return Post(title, f"✅ {device} was updated{version}.", COLOUR_UPDATE_OK)
    if view.outcome == "rolled_back":
        return Post(
            title,
            f"↩️ The update of {device}{version} was rolled back: "
            "the device went back to its previous firmware.",
            COLOUR_UPDATE_ROLLBACK,
        )
    if view.outcome == "failed":
        fatal = "fatal" if view.fatal else "not fatal"
        reason = inert(view.message, MAX_MESSAGE_CHARS) if view.message else "no reason given"
        return Post(
            title,
            clip(
                f"❌ The update of {device}{version} failed ({fatal}): {reason}",
                MAX_DESCRIPTION_CHARS,
            ),
            COLOUR_UPDATE_FAILED,
        )
    lines = [f"⏳ Updating {device}{version}…"]
    if view.task is not None:
        step = f"Step {view.task + 1}/{len(TASK_NAMES)}: {task_name(view.task)}"
        lines.append(f"{step}\n`{progress_bar(view.percent)}` {view.percent:.0f} %")
    else:
        lines.append("Starting")
    return Post(title, "\n".join(lines), COLOUR_UPDATE_RUNNING)


# --- Packing lines into posts ------------------------------------------------------------------


def pack_lines(lines: Sequence[str], limit: int = MAX_POST_CHARS) -> str:
    """Join the lines of one stored event, cut to what one post can hold."""
    text = ""
    for index, line in enumerate(lines):
        candidate = f"{text}\n{line}" if text else line
        if len(candidate) > limit - 40:
            return f"{text}\n… and {len(lines) - index} more"
        text = candidate
    return text
