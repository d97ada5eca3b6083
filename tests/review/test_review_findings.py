"""Review findings, reproduced through the real bot (fake Discord, fake OpenShock)."""

from __future__ import annotations

from tests.cogs.test_play import Scene, scene  # noqa: F401  (fixture)


async def test_a_vote_fires_with_the_starters_roles_from_its_start(scene: Scene) -> None:  # noqa: F811
    """The starter's controller role is taken away during the vote; at the end the control is
    'decided again as the starter' with the roles stored at the start, and is sent."""
    h = scene.h
    role = h.discord.add_role("controllers")
    dave = h.discord_user("dave")
    h.discord.add_member(None, dave, [role])
    h.ix.set_roles(dave, [role])
    await scene.grant(role)  # type: ignore[arg-type]
    vote = await scene.posted_vote(dave, intensity=10, duration=1)
    await scene.press(vote, scene.carol, "yes")
    # The admins take dave's role away (and he may even leave the server) before the end.
    h.discord.add_member(None, dave, [])
    h.ix.set_roles(dave, [])
    # Dave, as he is now, may not control the collar:
    payload = h.ix.slash(
        "shock", {"shocker": scene.collar_id, "intensity": 10, "duration": 1}, user=dave
    )
    await h.run(payload)
    assert h.discord.replies_for(payload).ephemeral
    assert scene.control_frames() == []
    scene.time_is_up(vote)
    text = await scene.ended(vote)
    # BUG: the vote still fires as dave, with his old role's grant.
    assert scene.control_frames() == [], text
