"""Feed texts, without Discord or a database."""

from __future__ import annotations

from bot.domain.feed_render import (
    MAX_DESCRIPTION_CHARS,
    MAX_MESSAGE_CHARS,
    MAX_NAME_CHARS,
    ControlsEntry,
    DeviceChange,
    LoggedControl,
    OtaEvent,
    OtaPhase,
    fold_ota,
    inert,
    pack_lines,
    progress_bar,
    render_controls,
    render_device_change,
    render_ota,
)

GUILD = 1
OTHER = 2


def control(shocker: str = "s1", name: str = "Collar", type_: int = 1) -> LoggedControl:
    return LoggedControl(
        shocker_id=shocker,
        shocker_name=name,
        type=type_,
        intensity=25,
        duration_ms=1500,
        executed_at=1_700_000_000.5,
    )


def entry(
    *controls: LoggedControl,
    custom_name: str | None = None,
    from_bot: bool = False,
    by_guild: dict[int, list[str]] | None = None,
) -> ControlsEntry:
    return ControlsEntry(
        sender_name="Alice",
        custom_name=custom_name,
        from_bot=from_bot,
        wearer_id=42,
        controls=list(controls) or [control()],
        shockers_by_guild=by_guild if by_guild is not None else {GUILD: ["s1"]},
    )


def test_a_control_line_says_who_what_how_strong_how_long_which_shocker_and_when() -> None:
    (line,) = render_controls(entry(custom_name="Web UI"), GUILD)
    assert line == (
        "<t:1700000000:T> ⚡ **Shock** 25 % · 1.5 s → **Collar** (<@42>) · by **Web UI**"
    )


def test_the_openshock_account_name_is_never_shown() -> None:
    (line,) = render_controls(entry(), GUILD)
    assert line.endswith("by an OpenShock user")
    assert "Alice" not in line


def test_a_linked_sender_is_shown_by_their_discord_identity() -> None:
    linked = entry().model_copy(update={"sender_discord_id": 77})
    (line,) = render_controls(linked, GUILD)
    assert line.endswith("by <@77>")
    labelled = entry(custom_name="ShockOSC").model_copy(update={"sender_discord_id": 77})
    (line,) = render_controls(labelled, GUILD)
    assert line.endswith("by **ShockOSC** (through <@77>'s OpenShock account)")
    (line,) = render_controls(entry(custom_name="ShockOSC"), GUILD)
    assert line.endswith("by **ShockOSC**")


def test_the_bots_own_controls_name_the_member_and_the_bot() -> None:
    (line,) = render_controls(entry(custom_name="Bob (Discord)", from_bot=True), GUILD)
    assert line.endswith("by **Bob** via Discord (this bot)")


def test_stop_has_no_intensity_or_duration() -> None:
    (line,) = render_controls(entry(control(type_=0)), GUILD)
    assert "⏹️ **Stop** → **Collar**" in line
    assert "%" not in line


def test_a_guild_sees_only_its_shared_shockers() -> None:
    both = entry(
        control("s1", "Collar"),
        control("s2", "Cuff"),
        by_guild={GUILD: ["s1"], OTHER: ["s1", "s2"]},
    )
    assert [("Cuff" in line) for line in render_controls(both, GUILD)] == [False]
    assert len(render_controls(both, OTHER)) == 2
    assert render_controls(both, 3) == []


def test_outside_names_are_inert() -> None:
    (line,) = render_controls(
        entry(control(name="*x* @here"), custom_name="@everyone <@123456789012345678>"), GUILD
    )
    assert "\\*x\\* @\u200bhere" in line
    assert "@\u200beveryone <@\u200b123456789012345678>" in line
    assert inert("a_b`c`") == "a\\_b\\`c\\`"


def change(**fields: object) -> DeviceChange:
    values: dict[str, object] = {
        "device_id": "d1",
        "device_name": "Hub",
        "online_before": False,
        "online": True,
        "firmware_before": "1.4.0",
        "firmware": "1.4.0",
        "at": 1_700_000_000,
    }
    values.update(fields)
    return DeviceChange.model_validate(values)


def test_device_lines() -> None:
    assert render_device_change(change()) == [
        "<t:1700000000:T> 🟢 **Hub** is online (firmware 1.4.0)"
    ]
    assert render_device_change(change(online_before=True, online=False)) == [
        "<t:1700000000:T> 🔴 **Hub** went offline"
    ]
    assert render_device_change(change(online_before=True, firmware="1.5.0")) == [
        "<t:1700000000:T> 🔁 **Hub** firmware 1.4.0 → 1.5.0"
    ]
    assert render_device_change(change(online_before=True)) == []


def test_an_unnamed_device_is_still_described() -> None:
    assert (
        "A device went offline"
        in render_device_change(change(device_name=None, online_before=True, online=False))[0]
    )


def ota(phase: OtaPhase, **fields: object) -> OtaEvent:
    return OtaEvent.model_validate(
        {"phase": phase, "device_id": "d1", "device_name": "Hub", "update_id": 1, "at": 1.0}
        | fields
    )


def test_an_update_in_progress_shows_the_task_and_a_bar() -> None:
    view = fold_ota(
        [
            ota(OtaPhase.STARTED, version="1.5.0"),
            ota(OtaPhase.PROGRESS, task=4, percent=75.0),
        ]
    )
    post = render_ota(view)
    assert not view.finished
    assert "Updating **Hub** to **1.5.0**" in post.description
    assert "Step 5/7: Flashing application\n`███████████████░░░░░` 75 %" in post.description


def test_an_update_ends_in_success_failure_or_rollback() -> None:
    started = ota(OtaPhase.STARTED, version="1.5.0")
    done = render_ota(fold_ota([started, ota(OtaPhase.SUCCEEDED)]))
    assert done.description == "✅ **Hub** was updated to **1.5.0**."
    failed = fold_ota([started, ota(OtaPhase.FAILED, fatal=False, message="No *space*")])
    assert failed.finished
    assert "failed (not fatal): No \\*space\\*" in render_ota(failed).description
    rolled = fold_ota(
        [started, ota(OtaPhase.FAILED, fatal=True, message="x"), ota(OtaPhase.ROLLBACK)]
    )
    assert "rolled back" in render_ota(rolled).description


def test_progress_after_the_end_changes_nothing() -> None:
    view = fold_ota([ota(OtaPhase.SUCCEEDED), ota(OtaPhase.PROGRESS, task=1, percent=10.0)])
    assert view.outcome == "succeeded" and view.task is None


def test_progress_bar_bounds() -> None:
    assert progress_bar(0, 10) == "░" * 10
    assert progress_bar(100, 10) == "█" * 10
    assert progress_bar(250, 4) == "████"


def test_too_many_lines_are_cut_with_a_count() -> None:
    text = pack_lines([f"line {i:04d}" for i in range(1000)], limit=200)
    assert len(text) <= 200
    assert text.startswith("line 0000\nline 0001")
    assert text.endswith("more")
    assert pack_lines(["a", "b"]) == "a\nb"


def test_a_long_failure_message_is_cut_and_the_post_fits_an_embed() -> None:
    started = ota(OtaPhase.STARTED, version="1.5.0")
    for message in ("x" * 50_000, "*_`@everyone " * 10_000):
        failed = fold_ota([started, ota(OtaPhase.FAILED, fatal=True, message=message)])
        description = render_ota(failed).description
        assert len(description) <= MAX_DESCRIPTION_CHARS
        assert "failed (fatal): " in description
        assert description.endswith("…")
    failed = fold_ota([started, ota(OtaPhase.FAILED, fatal=True, message="y" * 50_000)])
    reason = render_ota(failed).description.split(": ", 1)[1]
    assert reason == "y" * (MAX_MESSAGE_CHARS - 1) + "…"
    short = fold_ota([started, ota(OtaPhase.FAILED, fatal=True, message="y" * MAX_MESSAGE_CHARS)])
    assert render_ota(short).description.endswith("y" * MAX_MESSAGE_CHARS)


def test_long_names_from_outside_are_cut_everywhere() -> None:
    long = "N" * 5_000
    (line,) = render_controls(entry(control(name=long), custom_name=long), GUILD)
    assert len(line) < 400
    assert "N" * (MAX_NAME_CHARS - 1) + "…" in line
    lines = render_device_change(
        change(device_name=long, online_before=True, firmware_before=long, firmware=long + "2")
    )
    assert lines and all(len(line) < 500 for line in lines)
    for view in (
        fold_ota([ota(OtaPhase.STARTED, device_name=long, version=long)]),
        fold_ota([ota(OtaPhase.SUCCEEDED, device_name=long)]),
        fold_ota([ota(OtaPhase.ROLLBACK, device_name=long)]),
    ):
        assert len(render_ota(view).description) < 600
    assert inert("short") == "short"
    assert inert("abcdef", 4) == "abc…"
