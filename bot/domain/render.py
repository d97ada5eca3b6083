"""How controls read in replies and lists: plain text, no Discord objects."""

from __future__ import annotations

from bot.domain.controls import ControlKind, format_duration

# What the bot puts after a member's display name in OpenShock's customName (the sender its
# logs show); the controls feed strips it again to name the member.
BOT_NAME_SUFFIX = " (Discord)"


def custom_name_for(display_name: str, limit: int) -> str:
    """`Alice (Discord)`, the display name cut so the whole fits in `limit` characters."""
    return display_name[: limit - len(BOT_NAME_SUFFIX)] + BOT_NAME_SUFFIX


ICONS = {
    ControlKind.STOP: "⏹️",
    ControlKind.SHOCK: "⚡",
    ControlKind.VIBRATE: "〰️",
    ControlKind.SOUND: "🔊",
}


def type_name(control_type: int) -> str:
    try:
        return ControlKind(control_type).name.capitalize()
    except ValueError:
        return f"Type {control_type}"


def control_icon(control_type: int) -> str:
    try:
        return ICONS[ControlKind(control_type)]
    except (ValueError, KeyError):
        return "•"


_HEADS: dict[int, str] = {kind: f"{ICONS[kind]} {kind.name.capitalize()}" for kind in ControlKind}


def control_summary(
    control_type: int, intensity: int | None, duration_ms: int | None, target: str
) -> str:
    """`⚡ Shock 25 % · 1.5 s → Collar (Alice)`; Stop reads `⏹️ Stop → Collar (Alice)`."""
    head = _HEADS.get(control_type) or f"{control_icon(control_type)} {type_name(control_type)}"
    if control_type != ControlKind.STOP:
        values = []
        if intensity is not None:
            values.append(f"{intensity} %")
        if duration_ms is not None:
            values.append(format_duration(duration_ms))
        if values:
            head += " " + " · ".join(values)
    return f"{head} → {target}"
