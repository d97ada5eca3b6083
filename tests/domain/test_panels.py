"""What the panel's presets and reactions ask for, from the share's caps."""

from __future__ import annotations

import pytest

from bot.domain.controls import ControlKind
from bot.domain.panels import PanelAction, PresetControl, preset, reaction_action


@pytest.mark.parametrize(
    ("action", "cap", "duration_cap", "expected"),
    [
        (PanelAction.LIGHT, 40, 3000, PresetControl(ControlKind.SHOCK, 10, 1000)),
        (PanelAction.MEDIUM, 40, 3000, PresetControl(ControlKind.SHOCK, 20, 1000)),
        (PanelAction.STRONG, 40, 3000, PresetControl(ControlKind.SHOCK, 40, 1000)),
        (PanelAction.LIGHT, 3, 500, PresetControl(ControlKind.SHOCK, 1, 500)),  # at least 1 %
        (PanelAction.VIBRATE, 40, 500, PresetControl(ControlKind.VIBRATE, 50, 1000)),
        (PanelAction.SOUND, 40, 3000, PresetControl(ControlKind.SOUND, 50, 1000)),
        (PanelAction.STOP, 40, 3000, PresetControl(ControlKind.STOP, 0, 300)),
    ],
)
def test_presets_follow_the_share_caps(
    action: PanelAction, cap: int, duration_cap: int, expected: PresetControl
) -> None:
    # Vibrate and Sound ask for fixed values; the decision caps them like any control.
    assert preset(action, max_intensity=cap, max_duration_ms=duration_cap) == expected


def test_custom_is_not_a_preset() -> None:
    with pytest.raises(ValueError, match="not a preset"):
        preset(PanelAction.CUSTOM, max_intensity=25, max_duration_ms=1000)


def test_reactions_with_or_without_the_variation_selector() -> None:
    assert reaction_action("⚡") is PanelAction.LIGHT
    assert reaction_action("〰️") is reaction_action("〰") is PanelAction.VIBRATE
    assert reaction_action("🔊") is PanelAction.SOUND
    assert reaction_action("👍") is None
