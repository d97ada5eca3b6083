"""How long one control decision takes in a busy guild.

Builds a guild with 10,000 grants (members and roles, one shocker and all shockers) and 1,000
shares, then times `decide_control` for a mix of callers and shockers and prints the median time
per decision against the bar (< 50 µs). Run: ``python bench/decision.py``.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.domain.decision import (
    Allowed,
    ControlFacts,
    ControlKind,
    ControlRequest,
    GrantIndex,
    GrantRule,
    GrantTarget,
    GuildShare,
    Limits,
    decide_control,
)

BAR_US = 50.0
GUILD = 900_000_000_000_000_000
GRANTS = 10_000
SHARES = 1_000
MEMBERS = 5_000
ROLES = 200
ROLES_PER_MEMBER = 12
REQUESTS = 200
REPEATS = 7
LOOPS = 500


def build(rng: random.Random) -> tuple[GrantIndex, dict[str, GuildShare], list[ControlRequest]]:
    shares = {
        f"shocker-{n:04d}": GuildShare(
            shocker_id=f"shocker-{n:04d}",
            wearer_id=10_000 + n % 300,
            max_intensity=rng.randint(10, 100),
            max_duration_ms=rng.randint(300, 30_000),
        )
        for n in range(SHARES)
    }
    shocker_ids = list(shares)
    role_ids = [GUILD + 1 + n for n in range(ROLES)]
    grants = []
    for _ in range(GRANTS):
        kind = rng.choice(list(GrantTarget))
        target = rng.randrange(MEMBERS) if kind is GrantTarget.MEMBER else rng.choice(role_ids)
        grants.append(
            GrantRule(
                target_kind=kind,
                target_id=target,
                shocker_id=rng.choice(shocker_ids) if rng.random() < 0.7 else None,
                max_intensity=rng.choice([None, 20, 50, 80]),
                max_duration_ms=rng.choice([None, 1000, 5000]),
                cooldown_ms=rng.choice([None, 0, 5000]),
                allow_shock=rng.random() < 0.8,
            )
        )
    grants.append(GrantRule(GrantTarget.ROLE, GUILD, max_intensity=10))  # @everyone
    requests = [
        ControlRequest(
            member_id=rng.randrange(MEMBERS),
            member_role_ids=frozenset(rng.sample(role_ids, ROLES_PER_MEMBER)),
            guild_id=GUILD,
            type=rng.choice(list(ControlKind)),
            intensity=rng.randint(1, 100),
            duration_ms=rng.randint(300, 10_000),
        )
        for _ in range(REQUESTS)
    ]
    return GrantIndex(grants), shares, requests


def main() -> None:
    rng = random.Random(42)
    started = time.perf_counter()
    index, shares, requests = build(rng)
    built_ms = (time.perf_counter() - started) * 1000
    shocker_ids = list(shares)
    now = time.time()
    cases = [
        (
            request,
            ControlFacts(
                share=shares[rng.choice(shocker_ids)],
                grants=index,
                operator_limits=Limits(100, 30_000),
                guild_limits=Limits(80, 20_000),
                device_online=True,
                last_control_at=now - rng.uniform(0, 10),
                now=now,
            ),
        )
        for request in requests
    ]
    allowed = sum(isinstance(decide_control(r, f), Allowed) for r, f in cases)

    def run() -> None:
        for request, facts in cases:
            decide_control(request, facts)

    per_decision_us = [
        t / (LOOPS * len(cases)) * 1e6 for t in timeit.repeat(run, repeat=REPEATS, number=LOOPS)
    ]
    median = statistics.median(per_decision_us)
    print(
        f"guild: {len(index)} grants, {len(shares)} shares, {ROLES_PER_MEMBER} roles per member; "
        f"index built in {built_ms:.1f} ms"
    )
    print(f"{len(cases)} distinct requests, {allowed} allowed, the rest refused")
    print(
        f"decide_control: median {median:.2f} µs per decision "
        f"(min {min(per_decision_us):.2f}, max {max(per_decision_us):.2f}; "
        f"{REPEATS} runs x {LOOPS * len(cases)} decisions)"
    )
    verdict = "PASS" if median < BAR_US else "FAIL"
    print(f"bar: < {BAR_US:.0f} µs median: {verdict}")
    if median >= BAR_US:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
