"""A replica's cache of per-turn rows (core/db/replica_cache.py): trusted until dropped or ``ttl`` old, and a
read under way when its entry was dropped does not put back what may predate the change."""

from __future__ import annotations

from core.db.replica_cache import ReplicaCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_is_trusted_until_dropped_or_too_old() -> None:
    clock = Clock()
    cache: ReplicaCache[str, int | None] = ReplicaCache(ttl=60.0, clock=clock)
    assert cache.get("C1") == (False, None)
    cache.put("C1", None, cache.generation)  # "nothing set" is a value too
    cache.put("C2", 2, cache.generation)
    assert cache.get("C1") == (True, None) and cache.get("C2") == (True, 2)
    cache.drop("C1")
    assert cache.get("C1") == (False, None) and cache.get("C2") == (True, 2)
    clock.now = 60.0
    assert cache.get("C2") == (False, None)
    cache.put("C2", 3, cache.generation)
    cache.clear()
    assert cache.get("C2") == (False, None)


def test_a_read_begun_before_a_drop_does_not_store_what_it_read() -> None:
    cache: ReplicaCache[str, int] = ReplicaCache()
    begun = cache.generation  # a read starts ...
    cache.drop("C1")  # ... a change is heard meanwhile ...
    cache.put("C1", 1, begun)  # ... and what the read found may be from before it
    assert cache.get("C1") == (False, None)
    cache.put("C1", 2, cache.generation)
    assert cache.get("C1") == (True, 2)
