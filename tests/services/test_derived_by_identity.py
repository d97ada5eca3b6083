"""`DerivedByIdentity`: what a control derives from kept, immutable inputs is derived once per
input object, and again for any other object, equal or not."""

from __future__ import annotations

from bot.services.control.facts import DerivedByIdentity


def test_the_same_object_is_derived_once_and_an_equal_one_again() -> None:
    calls: list[tuple[int, ...]] = []

    def derive(source: tuple[int, ...]) -> int:
        calls.append(source)
        return sum(source)

    derived = DerivedByIdentity(derive)
    kept = (1, 2, 3)
    assert derived(kept) == 6 and derived(kept) == 6
    assert len(calls) == 1
    equal = tuple([1, 2, 3])  # another object with the same content
    assert equal is not kept
    assert derived(equal) == 6
    assert len(calls) == 2


def test_at_most_the_limit_is_held() -> None:
    derived = DerivedByIdentity(len, limit=3)
    sources = [tuple(range(n)) for n in range(10)]
    for source in sources:
        assert derived(source) == len(source)
    assert len(derived._kept) <= 3
    assert derived(sources[-1]) == 9
