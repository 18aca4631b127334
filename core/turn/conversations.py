"""The conversation registry: which conversation a key is, its model, and the commands that change them.

Ids are cached per process (a conversation's id never changes). A turn reads its conversation's model fresh
from the database with its queue place (core/turn/store.py), so `/ai model` given to any replica applies to
the next turn on every replica. Writes hold this process's turn lock of the conversation, so they wait for
a turn in progress here.
"""

from __future__ import annotations

from collections import OrderedDict

from core.db.repositories import ConversationRepository, EventRepository, MessageRepository, open_conversation
from core.db.session import Database
from core.domain.ports import ConversationRef, PersonaLookup
from core.domain.types import ConversationKey
from core.turn.history import HistoryStore
from core.turn.ordering import KeyedLocks

CACHE_SIZE = 4096


class Conversations:
    """The ConversationDirectory of the turn, and the conversation commands (`/ai model`, `/ai reset`)."""

    def __init__(
        self,
        database: Database,
        history: HistoryStore,
        locks: KeyedLocks,
        default_model: str,
        personas: PersonaLookup | None = None,
    ) -> None:
        self._personas = personas
        self._db = database
        self._history = history
        self._locks = locks
        self._default_model = default_model
        self._cache: OrderedDict[ConversationKey, ConversationRef] = OrderedDict()

    async def open(self, key: ConversationKey, started_by: str | None = None) -> ConversationRef:
        """The conversation of ``key``, created on first use (by ``started_by``, a user id)."""
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        found = ConversationRef(*await self._db.transact(lambda db: open_conversation(db, key, started_by)))
        self._remember(key, found)
        return found

    async def exists(self, key: ConversationKey) -> bool:
        """Whether ``key`` already holds a conversation (a thread the assistant has taken part in)."""
        if key in self._cache:
            return True
        async with self._db.reading() as connection:
            return await ConversationRepository(connection).model(key) is not None

    async def conversation_id(self, key: ConversationKey, started_by: str | None = None) -> int:
        return (await self.open(key, started_by)).id

    async def started_by(self, key: ConversationKey) -> str | None:
        """The user id that opened the conversation of ``key``; None when there is none or it is not known."""
        async with self._db.reader() as session:
            found = await ConversationRepository(session).find(key)
        return found.started_by if found is not None else None

    async def last_thread(self, platform: str, workspace_id: str, channel_id: str, user_id: str) -> str:
        async with self._db.reader() as session:
            found = await EventRepository(session).last_thread(platform, workspace_id, channel_id, user_id)
        return found or ""

    async def model_of(self, key: ConversationKey) -> str:
        """The model the next turn of ``key`` uses: its own, else its persona's, else the default."""
        async with self._db.reader() as session:
            found = await ConversationRepository(session).find(key)
        if found is not None and found.model:
            return found.model
        persona = await self._personas.persona(key) if self._personas is not None else None
        return (persona.model if persona is not None else None) or self._default_model

    async def set_model(self, key: ConversationKey, model: str | None, by: str | None = None) -> None:
        """Use ``model`` for later turns of ``key`` (None: back to the default); ``by`` starts it if new."""
        async with self._locks.hold(key):
            async with self._db.unit_of_work() as session:
                conversation = await ConversationRepository(session).get_or_create(key, by)
                conversation.model = model
                found = ConversationRef(conversation.id, model)
            self._cache[key] = found

    async def reset(self, key: ConversationKey) -> int:
        """Hide the history of ``key`` from later turns (kept for audit until retention); returns how many
        messages were hidden. Waits for a turn in progress in that conversation."""
        async with self._locks.hold(key):
            async with self._db.unit_of_work() as session:
                found = await ConversationRepository(session).find(key)
                if found is None:
                    return 0
                hidden = await MessageRepository(session).hide_all(found.id)
            self._history.forget(found.id)
        return hidden

    def _remember(self, key: ConversationKey, found: ConversationRef) -> None:
        self._cache[key] = found
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
