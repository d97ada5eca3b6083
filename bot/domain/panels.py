"""What a control panel's buttons and reactions ask for, from the share's caps read at the press.

The values are only the request: the decision caps them again like any control.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from bot.domain.controls import MIN_INTENSITY, STOP_DURATION_MS, ControlKind

PRESET_DURATION_MS: Final = 1000
VIBRATE_INTENSITY: Final = 50
SOUND_INTENSITY: Final = 50


class PanelAction(StrEnum):
    """A panel button, as its custom id names it (`panel:<id>:<action>`)."""

    LIGHT = "light"
    MEDIUM = "medium"
    STRONG = "strong"
    VIBRATE = "vibrate"
    SOUND = "sound"
    STOP = "stop"
    CUSTOM = "custom"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS: Final = {
    PanelAction.LIGHT: "Light",
    PanelAction.MEDIUM: "Medium",
    PanelAction.STRONG: "Strong",
    PanelAction.VIBRATE: "Vibrate",
    PanelAction.SOUND: "Sound",
    PanelAction.STOP: "Stop",
    PanelAction.CUSTOM: "Custom…",
}

# Share of the intensity cap each shock preset asks for, in percent.
_SHOCK_SHARE: Final = {PanelAction.LIGHT: 25, PanelAction.MEDIUM: 50, PanelAction.STRONG: 100}

# The reactions a panel offers, and the button each one stands for.
REACTIONS: Final = {"⚡": PanelAction.LIGHT, "〰️": PanelAction.VIBRATE, "🔊": PanelAction.SOUND}


def reaction_action(emoji: str) -> PanelAction | None:
    """The action of a reaction; Discord may send 〰️ with or without its variation selector."""
    wanted = emoji.replace("\ufe0f", "")
    for known, action in REACTIONS.items():
        if known.replace("\ufe0f", "") == wanted:
            return action
    return None


@dataclass(frozen=True, slots=True)
class PresetControl:
    kind: ControlKind
    intensity: int
    duration_ms: int


def preset(action: PanelAction, *, max_intensity: int, max_duration_ms: int) -> PresetControl:
    """The control a preset button asks for, given the share's caps.

    Light, Medium and Strong shock at 25, 50 and 100 % of the intensity cap (at least 1 %), for
    1 s or the duration cap if lower; Vibrate is 50 % for 1 s, Sound 1 s; Stop is Stop.
    """
    if action in _SHOCK_SHARE:
        intensity = max(MIN_INTENSITY, max_intensity * _SHOCK_SHARE[action] // 100)
        return PresetControl(ControlKind.SHOCK, intensity, min(PRESET_DURATION_MS, max_duration_ms))
    if action is PanelAction.VIBRATE:
        return PresetControl(ControlKind.VIBRATE, VIBRATE_INTENSITY, PRESET_DURATION_MS)
    if action is PanelAction.SOUND:
        return PresetControl(ControlKind.SOUND, SOUND_INTENSITY, PRESET_DURATION_MS)
    if action is PanelAction.STOP:
        return PresetControl(ControlKind.STOP, 0, STOP_DURATION_MS)
    raise ValueError(f"{action} is not a preset")
