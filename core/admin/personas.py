"""Channel and workspace personas (`/ai-admin prompt …`, `threadwise admin prompt …`): stored per channel or
per workspace, looked up on every turn (the channel's beats the workspace's).

Lookups are cached per replica (``ReplicaCache``): a change, made on any replica or by `threadwise admin`,
sends a ``persona`` notice in its transaction and every listening replica drops that entry at once; the whole
cache goes when the listening connection (re)opens or a turn's claim finds the count of setting changes moved
(another process's change, on SQLite), and an entry is read again after ``ttl`` seconds (60) should a notice
be lost anyway. Every change and every ``show`` is recorded in
``admin_actions`` through ``AdminService.record`` (which also refuses non-admins, recording the refusal).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.admin.service import AdminService
from core.db.models import PersonaRow
from core.db.notices import Notice, Notices, place_in
from core.db.replica_cache import SAFETY_TTL, ReplicaCache
from core.db.repositories import insert_for
from core.db.session import Database
from core.domain.errors import BadInput
from core.domain.ports import Persona
from core.domain.types import ChatUser, ConversationKey

MAX_PROMPT_CHARS = 4000  # a persona is sent with every turn of its channel: it is kept short
WORKSPACE = ""  # channel_id of a workspace-wide persona

Place = tuple[str, str, str]  # platform, workspace_id, channel_id ("" for the whole workspace)


def place_name(place: Place) -> str:
    return ":".join(part for part in place if part)


def parse_place(channel: str | None, workspace: str | None) -> Place:
    """``--channel slack:T01:C02`` or ``--workspace slack:T01`` (exactly one)."""
    if (channel is None) == (workspace is None):
        raise BadInput("Name one of --channel platform:workspace:channel or --workspace platform:workspace.")
    text = channel if channel is not None else workspace
    assert text is not None
    parts = text.split(":")
    if len(parts) != (3 if channel is not None else 2) or not all(parts):
        shape = "platform:workspace_id:channel_id (e.g. slack:T01:C02)" if channel else "platform:workspace"
        raise BadInput(f"A {'channel' if channel else 'workspace'} looks like {shape}, not {text!r}.")
    return (parts[0], parts[1], parts[2] if channel is not None else WORKSPACE)


@dataclass(frozen=True, slots=True)
class StoredPersona:
    place: Place
    persona: Persona
    set_by: str
    updated_at: datetime


class Personas:
    """The PersonaLookup of the turn, and the admin operations that change it."""

    def __init__(
        self,
        database: Database,
        admin: AdminService | None = None,
        *,
        models: Sequence[str] = (),
        notices: Notices | None = None,
        ttl: float = SAFETY_TTL,
    ) -> None:
        """``models``: the models a persona may name (THREADWISE_MODELS); empty: any. ``notices``: this
        replica's (changes reach the others, theirs reach this one); None: this process only."""
        self._db = database
        self._admin = admin
        self._models = tuple(models)
        self._notices = notices
        self._cache: ReplicaCache[Place, Persona | None] = ReplicaCache(ttl=ttl)
        database.board.on_start_over(self._cache.clear)  # notices missed, or the count of changes moved
        if notices is not None:
            notices.subscribe("persona", self._changed)

    async def persona(self, key: ConversationKey) -> Persona | None:
        channel = await self._get((key.platform, key.workspace_id, key.channel_id))
        if channel is not None:
            return channel
        return await self._get((key.platform, key.workspace_id, WORKSPACE))

    async def _get(self, place: Place) -> Persona | None:
        found, cached = self._cache.get(place)
        if found:
            return cached
        generation = self._cache.generation
        stored = await self._row(place)
        persona = stored.persona if stored is not None else None
        self._cache.put(place, persona, generation)
        return persona

    def _changed(self, notice: Notice) -> None:
        self._cache.drop(place_in(notice))

    async def _row(self, place: Place) -> StoredPersona | None:
        platform, workspace_id, channel_id = place
        async with self._db.reader() as session:
            row = (
                await session.execute(
                    select(PersonaRow).where(
                        PersonaRow.platform == platform,
                        PersonaRow.workspace_id == workspace_id,
                        PersonaRow.channel_id == channel_id,
                    )
                )
            ).scalar_one_or_none()
        if row is None:
            return None
        scope = "workspace" if channel_id == WORKSPACE else "channel"
        tools = tuple(row.tools) if row.tools is not None else None
        return StoredPersona(place, Persona(row.prompt, row.model, tools, scope), row.set_by, row.updated_at)

    # ---- admin operations ----------------------------------------------------------------------------------

    async def show(self, actor: ChatUser, place: Place) -> StoredPersona | None:
        await self._record(actor, "prompt.show", place, {})
        return await self._row(place)

    async def set(
        self,
        actor: ChatUser,
        place: Place,
        prompt: str,
        *,
        model: str | None = None,
        tools: Sequence[str] | None = None,
    ) -> Persona:
        prompt = prompt.strip()
        if not prompt:
            raise BadInput("A persona needs some text: `prompt set here <text>`.")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise BadInput(f"A persona is at most {MAX_PROMPT_CHARS} characters; this one has {len(prompt)}.")
        if model is not None and self._models and model not in self._models:
            raise BadInput(f"Unknown model `{model}`: use one of {', '.join(self._models)}.")
        names = tuple(dict.fromkeys(tools)) if tools is not None else None
        details = {"prompt": prompt, "model": model, "tools": list(names) if names is not None else None}
        await self._record(actor, "prompt.set", place, details)
        platform, workspace_id, channel_id = place
        values = {
            "prompt": prompt,
            "model": model,
            "tools": list(names) if names is not None else None,
            "set_by": f"{actor.platform}:{actor.user_id}",
            "updated_at": datetime.now(UTC),
        }
        async with self._db.unit_of_work() as session:
            await session.execute(
                insert_for(session, PersonaRow)
                .values(platform=platform, workspace_id=workspace_id, channel_id=channel_id, **values)
                .on_conflict_do_update(index_elements=["platform", "workspace_id", "channel_id"], set_=values)
            )
            await self._tell(place, session)
        self._cache.drop(place)
        return Persona(prompt, model, names, "workspace" if channel_id == WORKSPACE else "channel")

    async def clear(self, actor: ChatUser, place: Place) -> bool:
        await self._record(actor, "prompt.clear", place, {})
        platform, workspace_id, channel_id = place
        async with self._db.unit_of_work() as session:
            result = await session.execute(
                delete(PersonaRow).where(
                    PersonaRow.platform == platform,
                    PersonaRow.workspace_id == workspace_id,
                    PersonaRow.channel_id == channel_id,
                )
            )
            await self._tell(place, session)
        self._cache.drop(place)
        return bool(getattr(result, "rowcount", 0))

    async def _tell(self, place: Place, session: AsyncSession) -> None:
        """Every replica drops its entry once the change commits."""
        if self._notices is not None:
            await self._notices.publish("persona", {"channel": list(place)}, session)

    async def _record(
        self, actor: ChatUser, action: str, place: Place, details: Mapping[str, object]
    ) -> None:
        if self._admin is None:
            raise RuntimeError("Personas were built without an AdminService: read-only")
        await self._admin.record(actor, action, place_name(place), dict(details))
