"""Review findings in approval mode, reproduced through the real bot."""

from __future__ import annotations

from tests.cogs.test_approvals import Scene, scene  # noqa: F401  (fixture)


async def test_a_requester_can_ping_the_wearer_without_limit_with_stop_in_between(
    scene: Scene,  # noqa: F811
) -> None:
    """MAX_PENDING_APPROVALS bounds the *open* requests, but the requester may end their own with
    /stop (allowed to anyone who may control), and no cooldown is reserved for a request: /shock,
    /stop, /shock, ... pings the wearer once per round, as fast as they can type."""
    rounds = 8
    for _ in range(rounds):
        await scene.ask(scene.bob, intensity=10, duration=1)
        await scene.slash("stop", scene.bob, shocker=scene.collar_id)
    await scene.posted(rounds)
    # Each request message is posted pinging the wearer (test_approvals checks its
    # allowed_mentions at creation; the later edits carry none). One member, seconds apart:
    posted = len(scene.requests())
    assert posted <= 3, f"the wearer was pinged {posted} times by one requester"


async def test_relinking_to_another_account_ends_what_waited_on_the_old_shares(
    scene: Scene,  # noqa: F811
) -> None:
    """/account link with a different OpenShock account deletes the old account's shares (like
    an unlink) but announces no halt: the pending request stays open, its timer armed and its
    message keeps Approve/Deny (votes, random modes and panels likewise)."""
    from bot.cogs.approvals import ApprovalsCog
    from tests.cogs.test_account import link_via_modal

    h = scene.h
    await scene.ask(scene.bob, intensity=10, duration=1)
    await scene.posted()
    other_os = h.openshock.add_user("Alt")
    reply = await link_via_modal(h, scene.alice, other_os.token)
    assert "Re-linked" in reply.text
    assert await h.storage.shares.in_guild(h.discord.guild_id) == []  # the share is gone
    cog = h.bot.get_cog(ApprovalsCog.__cog_name__)
    assert isinstance(cog, ApprovalsCog)
    await cog.idle()
    (request,) = scene.requests()
    assert "approval:" not in str(request.get("components")), "the request still shows its buttons"
