"""Halts reach every subscriber, match what they name, and one failing subscriber spoils nothing."""

from __future__ import annotations

import logging

import pytest

from bot.services.halts import Halt, Halts

GUILD, OTHER_GUILD, WEARER, OTHER_WEARER = 1, 2, 10, 11


def test_a_stop_covers_the_shocker_in_every_guild_and_nothing_else() -> None:
    halt = Halt("stop", shocker_id="s1")
    assert halt.covers(guild_id=GUILD, wearer_id=WEARER, shocker_id="s1")
    assert halt.covers(guild_id=OTHER_GUILD, wearer_id=WEARER, shocker_id="s1")
    assert halt.covers(guild_id=None, wearer_id=WEARER, shocker_id="s1")
    assert not halt.covers(guild_id=GUILD, wearer_id=WEARER, shocker_id="s2")


def test_a_panic_covers_every_shocker_of_the_wearer_only() -> None:
    halt = Halt("panic", wearer_id=WEARER)
    assert halt.covers(guild_id=GUILD, wearer_id=WEARER, shocker_id="s1")
    assert halt.covers(guild_id=OTHER_GUILD, wearer_id=WEARER, shocker_id="s2")
    assert not halt.covers(guild_id=GUILD, wearer_id=OTHER_WEARER, shocker_id="s3")


def test_a_pause_in_a_guild_covers_that_guild_only() -> None:
    halt = Halt("pause", guild_id=GUILD, wearer_id=WEARER)
    assert halt.covers(guild_id=GUILD, wearer_id=WEARER, shocker_id="s1")
    assert not halt.covers(guild_id=OTHER_GUILD, wearer_id=WEARER, shocker_id="s1")
    assert not halt.covers(guild_id=None, wearer_id=WEARER, shocker_id="s1")


def test_every_subscriber_hears_a_halt_even_after_one_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    halts = Halts()
    heard: list[Halt] = []

    def broken(halt: Halt) -> None:
        raise RuntimeError("boom")

    halts.subscribe(broken)
    halts.subscribe(heard.append)
    with caplog.at_level(logging.ERROR, logger="bot.services.halts"):
        halts.announce(Halt("stop", shocker_id="s1"))
    assert heard == [Halt("stop", shocker_id="s1")]
    assert any("halt listener failed" in r.getMessage() for r in caplog.records)
    halts.unsubscribe(heard.append)
    halts.announce(Halt("stop", shocker_id="s2"))
    assert len(heard) == 1


def test_each_reason_has_a_sentence() -> None:
    for reason in ("stop", "panic", "pause", "unshare", "unlink"):
        assert Halt(reason).sentence != "it was stopped"


def test_a_resume_reaches_resume_subscribers_only() -> None:
    halts = Halts()
    halted: list[Halt] = []
    resumed: list[Halt] = []
    halts.subscribe(halted.append)
    halts.subscribe_resumes(resumed.append)
    halts.announce_resume(Halt("resume", guild_id=GUILD, shocker_id="s1"))
    assert halted == []  # a resume ends nothing that waits to fire
    assert resumed == [Halt("resume", guild_id=GUILD, shocker_id="s1")]
    halts.unsubscribe_resumes(resumed.append)
    halts.announce_resume(Halt("resume", wearer_id=WEARER))
    assert len(resumed) == 1
