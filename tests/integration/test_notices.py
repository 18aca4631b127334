"""Notices (core/db/notices.py) in one process, SQLite and PostgreSQL alike: a notice is heard once its
transaction commits and never when it rolls back; a malformed one is logged and ignored; one too large for
the channel is refused when sent."""

from __future__ import annotations

import pytest

from core.db.notices import MAX_PAYLOAD, Notice, Notices
from core.db.session import Database


async def test_a_notice_is_heard_when_its_transaction_commits_and_not_when_it_rolls_back(
    database: Database,
) -> None:
    notices = Notices(database)
    heard: list[Notice] = []
    notices.subscribe("policy", heard.append)
    async with database.unit_of_work() as session:
        await notices.publish("policy", {"channel": ["slack", "T1", "C1"]}, session)
        assert heard == []  # not before the change is there to read
    assert heard == [{"channel": ["slack", "T1", "C1"]}]
    with pytest.raises(RuntimeError):
        async with database.unit_of_work() as session:
            await notices.publish("policy", {"channel": ["slack", "T1", "C2"]}, session)
            raise RuntimeError("the change failed")
    assert heard == [{"channel": ["slack", "T1", "C1"]}]


async def test_malformed_notices_are_ignored_and_oversized_ones_refused(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    notices = Notices(database)
    stops: list[int] = []

    def stop(notice: Notice) -> None:
        claim = notice["claim"]
        if not isinstance(claim, int):
            raise TypeError("claim")
        stops.append(claim)

    notices.subscribe("stop", stop)
    for payload in ("", "[1]", '{"claim": 1}', '{"topic": "stop"}', '{"topic": "stop", "claim": "x"}'):
        notices.deliver(payload)
    notices.deliver('{"topic": "stop", "claim": 1, "pad": "' + "x" * MAX_PAYLOAD + '"}')
    notices.deliver('{"topic": "news", "claim": 1}')  # a newer replica's topic: not this one's business
    notices.deliver('{"topic": "stop", "claim": 7}')
    assert stops == [7]
    assert len([r for r in caplog.records if "malformed" in r.getMessage()]) == 6
    with pytest.raises(ValueError, match="over"):
        await notices.publish("stop", {"claim": 1, "by": "x" * MAX_PAYLOAD})
    with pytest.raises(ValueError, match="unknown"):
        notices.subscribe("news", stop)
