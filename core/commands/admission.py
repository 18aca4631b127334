"""What every chat command passes before it does anything: a replayed delivery is dropped (claimed like an
event id in processed_events, so across replicas too), then the caller's command rate is counted."""

from __future__ import annotations

from core.db.repositories import EventRepository
from core.db.session import Database
from core.guards.rate_limit import RateLimitGuard


class Admission:
    """``limiter`` None: commands are not rate limited."""

    def __init__(self, database: Database, limiter: RateLimitGuard | None) -> None:
        self._db = database
        self._limiter = limiter

    async def admit(self, platform: str, user_id: str, delivery_id: str | None) -> bool:
        """False when ``delivery_id`` was seen before (a replay: do nothing); RateLimited when the user is
        over the command limit; True otherwise."""
        if delivery_id is not None:
            async with self._db.unit_of_work() as session:
                if await EventRepository(session).claim(delivery_id, platform, status="done") is None:
                    return False
        if self._limiter is not None:
            await self._limiter.check_commands(platform, user_id)
        return True
