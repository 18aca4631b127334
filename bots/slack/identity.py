"""Who wrote a message: a ChatUser with the Slack display name, and whether the user is a workspace admin or
owner (``users.info``, cached) or listed in THREADWISE_ADMINS."""

from __future__ import annotations

import logging
import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from core.domain.types import ChatUser

log = logging.getLogger(__name__)

PLATFORM = "slack"
USER_TTL = 600.0  # seconds a users.info answer is trusted (admin rights change rarely)


Cache = dict[str, tuple[float, ChatUser]]


class Directory:
    """``cache``: the answers of an earlier Directory of the same workspace (OAuth mode builds one per
    request, with the token of that request)."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        admins: tuple[str, ...],
        ttl: float = USER_TTL,
        size: int = 10_000,
        cache: Cache | None = None,
    ) -> None:
        self._client = client
        self._admins = frozenset(admins)
        self._ttl = ttl
        self._size = size
        self._cache: Cache = cache if cache is not None else {}

    async def user(self, user_id: str, *, name_hint: str | None = None) -> ChatUser:
        now = time.monotonic()
        cached = self._cache.get(user_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        listed = f"{PLATFORM}:{user_id}" in self._admins
        try:
            response = await self._client.users_info(user=user_id)
        except SlackApiError as exc:
            log.warning("users.info for %s failed: %s", user_id, exc.response.get("error"))
            return ChatUser(
                PLATFORM, user_id, name_hint or user_id, listed
            )  # not cached: ask again next time
        info = response.get("user") or {}
        profile = info.get("profile") or {}
        name = (
            profile.get("display_name")
            or profile.get("real_name")
            or info.get("real_name")
            or info.get("name")
            or name_hint
            or user_id
        )
        is_admin = listed or bool(
            info.get("is_admin") or info.get("is_owner") or info.get("is_primary_owner")
        )
        user = ChatUser(PLATFORM, user_id, str(name), is_admin)
        if len(self._cache) >= self._size:
            self._cache.clear()
        self._cache[user_id] = (now + self._ttl, user)
        return user
