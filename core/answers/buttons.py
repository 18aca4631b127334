"""What the buttons under an answer do, for every adapter: ``AnswerButtons``.

An answer is named by its turn's claim id (the ``processed_events`` row id, ``Replier.answer_id``): the
adapter puts it in each button's id and hands it back with the clicking user. Only the answer's asker, or
an admin (``THREADWISE_ADMINS``, a workspace admin as the platform says), may use them; anyone else gets
``NotAuthorized`` with a polite message, and nothing changes.

- ``vote``: 👍/👎 on a finished answer; one vote per user per answer, a second click changes it.
- ``stop``: a running answer stops within a moment on whichever replica runs it; what was streamed stays,
  with a note, and is charged and stored.
- ``retry``: the conversation's last answer is hidden from the history (kept for audit, like ``/ai reset``)
  and its question comes back as a new message, to be handed to ``ConversationService.handle`` (it is
  claimed and queued like any turn; its event id is derived from the answer, so a replayed click is a
  duplicate). Two clicks at once (two people, a double-click; on one replica or two): the first wins by one
  conditional update of the question's row, the second is refused with ``RETRYING`` and changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.answers.stops import StopChannel
from core.db.base import utcnow
from core.db.models import AnswerFeedback, Message, ProcessedEvent
from core.db.repositories import MessageRepository, insert_for
from core.db.session import Database
from core.domain.errors import BadInput, NotAuthorized
from core.domain.types import ChatUser, ConversationKey, IncomingMessage
from core.turn.pipeline import TurnOutcome

RETRY_PREFIX = "retry:"  # event ids of retried answers: retry:<claim id of the answer replaced>

NOT_YOURS = "Only the person who asked this question, or an admin, can use these buttons."
GONE = "I can't find that answer any more (it may have been deleted)."
NOT_LAST = "Only the last answer of a conversation can be retried; this one has been followed by another."
SETTLE_SECONDS = 5.0  # a click on an answer shown but not yet stored waits for it at most this long
NOT_FINISHED = "This answer is still being written. Stop it first, or wait for it to finish."
RETRYING = "This answer is already being retried: its new answer will follow."


@dataclass(frozen=True, slots=True)
class AnswerRef:
    """The answer a button is on, as its claim records it."""

    claim_id: int
    event_id: str
    key: ConversationKey
    asker: str  # the user id whose message the answer answers
    conversation_id: int | None
    status: str  # claimed (running or queued) | done | failed | interrupted


@dataclass(frozen=True, slots=True)
class Vote:
    """A recorded vote: ``up`` (True: 👍), the model it rates, and ``changed`` (False: it was already so)."""

    up: bool
    model: str
    changed: bool


@dataclass(frozen=True, slots=True)
class Stopping:
    """A Stop click's outcome: ``running`` False when the answer had already finished (nothing to stop)."""

    running: bool


class AnswerButtons:
    """``is_admin`` is the admin check of the commands (``AdminService.is_admin``); ``forget`` drops this
    process's cached history window of a conversation (``HistoryStore.forget``)."""

    def __init__(
        self,
        database: Database,
        stops: StopChannel,
        *,
        is_admin: Callable[[ChatUser], bool],
        forget: Callable[[int], None] | None = None,
    ) -> None:
        self._db = database
        self._stops = stops
        self._is_admin = is_admin
        self._forget = forget

    def listening(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold while serving: Stop clicks on other replicas reach this one's turns (PostgreSQL)."""
        return self._stops.listening()

    async def answer(self, claim_id: int, platform: str) -> AnswerRef:
        """The answer of ``claim_id`` on ``platform``; BadInput when there is none."""
        async with self._db.reader() as session:
            row = await session.get(ProcessedEvent, claim_id)
        if row is None or row.platform != platform or row.thread_id is None or row.user_id is None:
            raise BadInput(GONE)
        key = ConversationKey(row.platform, row.workspace_id or "", row.channel_id or "", row.thread_id)
        return AnswerRef(row.id, row.event_id, key, row.user_id, row.conversation_id, row.status)

    async def authorize(self, claim_id: int, user: ChatUser) -> AnswerRef:
        """The answer, if ``user`` may use its buttons: its asker or an admin; else NotAuthorized."""
        answer = await self.answer(claim_id, user.platform)
        if user.user_id != answer.asker and not self._is_admin(user):
            raise NotAuthorized(NOT_YOURS)
        return answer

    async def settled(self, claim_id: int, user: ChatUser) -> AnswerRef:
        """``authorize``, once the answer's turn is no longer running: 👍/👎 and Retry are shown with the
        answer's last text, a moment before its turn is stored, so a quick click waits that moment (at most
        ``SETTLE_SECONDS``; an answer still running after it is told so)."""
        answer = await self.authorize(claim_id, user)
        waited, pause = 0.0, 0.05
        while answer.status == "claimed" and waited < SETTLE_SECONDS:
            await asyncio.sleep(pause)
            waited += pause
            pause = min(pause * 2, 0.5)
            answer = await self.answer(claim_id, user.platform)
        return answer

    async def vote(self, claim_id: int, user: ChatUser, *, up: bool) -> Vote:
        """Record ``user``'s 👍 (``up``) or 👎 on a finished answer (replacing their earlier vote)."""
        answer = await self.settled(claim_id, user)
        if answer.status != "done" or answer.conversation_id is None:
            raise BadInput("Only a finished answer can be rated.")
        now = utcnow()
        value = 1 if up else -1
        async with self._db.unit_of_work() as session:
            model = await _model_of(session, answer)
            before = await session.scalar(
                select(AnswerFeedback.vote).where(
                    AnswerFeedback.claim_id == claim_id, AnswerFeedback.user_id == user.user_id
                )
            )
            statement = insert_for(session, AnswerFeedback).values(
                claim_id=claim_id,
                platform=answer.key.platform,
                workspace_id=answer.key.workspace_id,
                channel_id=answer.key.channel_id,
                conversation_id=answer.conversation_id,
                user_id=user.user_id,
                vote=value,
                model=model,
                created_at=now,
                updated_at=now,
            )
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=["claim_id", "user_id"],
                    set_={"vote": value, "model": model, "updated_at": now},
                )
            )
        return Vote(up=up, model=model, changed=before != value)

    async def stop(self, claim_id: int, user: ChatUser) -> Stopping:
        """Stop the answer while it streams (on whichever replica runs it); the turn then finishes with
        what was streamed and a note "Stopped by <user's display name>"."""
        answer = await self.authorize(claim_id, user)
        if answer.status != "claimed":
            return Stopping(running=False)
        await self._stops.stop(claim_id, user.display_name or user.user_id)
        return Stopping(running=True)

    async def retry(
        self,
        claim_id: int,
        user: ChatUser,
        *,
        click: str = "",
        run: Callable[[IncomingMessage], Awaitable[TurnOutcome]] | None = None,
    ) -> IncomingMessage:
        """Hide the conversation's last answer (and its question) from later context, and return its
        question as a new message for ``ConversationService.handle``, from the asker, with event id
        ``retry:<claim id>[:<click>]`` (``click``: what makes the click unique, e.g. Slack's action_ts or a
        Discord interaction id; a replayed click then claims nothing new). With ``run`` (e.g.
        ``lambda m: turns.handle(m, replier)``) the retry is run here, and when it fails (budget,
        moderation, the model) the old answer comes back into the history. BadInput when the answer is not
        the conversation's last answer (later turns that failed do not count)."""
        answer = await self.settled(claim_id, user)
        if answer.status == "claimed":
            raise BadInput(NOT_FINISHED)
        if answer.conversation_id is None:
            raise BadInput(GONE)
        key = answer.key
        async with self._db.unit_of_work() as session:
            later = await session.scalar(
                select(ProcessedEvent.id)
                .where(
                    ProcessedEvent.platform == key.platform,
                    ProcessedEvent.workspace_id == key.workspace_id,
                    ProcessedEvent.channel_id == key.channel_id,
                    ProcessedEvent.thread_id == key.thread_id,
                    ProcessedEvent.id > claim_id,
                    ProcessedEvent.status.not_in(("failed", "interrupted")),  # they left no answer
                )
                .limit(1)
            )
            if later is not None:
                raise BadInput(NOT_LAST)
            question = await session.scalar(
                select(Message)
                .where(
                    Message.conversation_id == answer.conversation_id,
                    Message.event_id == answer.event_id,
                    Message.role == "user",
                )
                .order_by(Message.id)
                .limit(1)
            )
            if question is None:
                raise BadInput(GONE)
            text = "\n\n".join(
                str(part.get("text") or "") for part in question.content if part.get("type") == "text"
            )
            if question.status == "retried":  # a retry is under way (its turn may not be claimed yet)
                raise BadInput(RETRYING)
            if question.status == "ok":
                # The first click wins: one conditional update of the question. Two clicks at once, on one
                # replica or on two, are serialized by its row lock (PostgreSQL: the second sees "retried"
                # once the first commits) or by the write lock (SQLite); the second changes nothing.
                won = await session.execute(
                    update(Message)
                    .where(Message.id == question.id, Message.status == "ok")
                    .values(status="retried")
                )
                if not getattr(won, "rowcount", 0):
                    raise BadInput(RETRYING)
            await session.execute(
                update(Message)
                .where(
                    Message.conversation_id == answer.conversation_id,
                    Message.id > question.id,
                    Message.status == "ok",
                )
                .values(status="retried")
            )
            await MessageRepository(session).bump_version([answer.conversation_id])
            question_id = question.id
        if self._forget is not None:
            self._forget(answer.conversation_id)
        asker = user if user.user_id == answer.asker else ChatUser(key.platform, answer.asker, answer.asker)
        message = IncomingMessage(
            key=key,
            user=asker,
            text=text,
            event_id=f"{RETRY_PREFIX}{claim_id}" + (f":{click}" if click else ""),
            received_at=datetime.now(UTC),
        )
        if run is not None:
            try:
                outcome = await run(message)
            except Exception:
                # The retry did not run to its end (e.g. the platform was unreachable while the old answer
                # was being marked): the old answer is back, or it would stay "being retried" for good.
                await self._restore(answer.conversation_id, question_id)
                raise
            if outcome is TurnOutcome.FAILED:
                await self._restore(answer.conversation_id, question_id)
        return message

    async def _restore(self, conversation_id: int, question_id: int) -> None:
        """A retry that failed: the answer it was to replace is in the history again."""
        async with self._db.unit_of_work() as session:
            await session.execute(
                update(Message)
                .where(
                    Message.conversation_id == conversation_id,
                    Message.id >= question_id,
                    Message.status == "retried",
                )
                .values(status="ok")
            )
            await MessageRepository(session).bump_version([conversation_id])
        if self._forget is not None:
            self._forget(conversation_id)


async def _model_of(session: AsyncSession, answer: AnswerRef) -> str:
    """The model that wrote the answer: the last assistant message between its question and the next."""
    mine = (
        Message.conversation_id == answer.conversation_id,
        Message.event_id == answer.event_id,
        Message.role == "user",
    )
    question = await session.scalar(select(Message.id).where(*mine).order_by(Message.id).limit(1))
    if question is None:
        return "(unknown)"
    following = await session.scalar(
        select(func.min(Message.id)).where(
            Message.conversation_id == answer.conversation_id, Message.role == "user", Message.id > question
        )
    )
    found = (
        select(Message.model)
        .where(
            Message.conversation_id == answer.conversation_id,
            Message.role == "assistant",
            Message.model.is_not(None),
            Message.id > question,
        )
        .order_by(Message.id.desc())
        .limit(1)
    )
    if following is not None:
        found = found.where(Message.id < following)
    model = await session.scalar(found)
    return str(model) if model else "(unknown)"
