"""Test-side pieces built from the real parts: a Replier that records what a user would see, and a
ConversationService wired to a database and the OpenAI fake through the real SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.db.session import Database
from core.domain.errors import BotError
from core.domain.ports import PersonaLookup, ToolRunner, TurnGuard
from core.domain.types import Attachment, ChatUser, ConversationKey, IncomingMessage
from core.guards.chain import GuardChain
from core.guards.output_moderation import OutputModeration
from core.llm.client import LLMClient
from core.llm.tokens import TokenCounter
from core.money.budgets import Budgets
from core.turn.history import HistoryStore
from core.turn.service import ConversationService, TurnConfig


@dataclass
class RecordingReplier:
    """Keeps every call the core makes, in order, as a user of a chat platform would observe them."""

    events: list[tuple[str, Any]] = field(default_factory=list)
    streaming: asyncio.Event = field(default_factory=asyncio.Event)  # set by the first update
    answer_id: int | None = None  # the turn's claim id (``answering``)

    async def start(self) -> None:
        self.events.append(("start", None))

    async def update(self, text: str) -> None:
        self.events.append(("update", text))
        self.streaming.set()

    async def status(self, text: str) -> None:
        self.events.append(("status", text))

    async def finish(self, text: str) -> None:
        self.events.append(("finish", text))

    async def attach(self, attachment: Attachment) -> None:
        self.events.append(("attach", attachment))

    async def error(self, error: BotError) -> None:
        self.events.append(("error", error))

    def track(self, on_posted: Callable[[dict[str, str]], None]) -> None:
        """A terminal-like replier: nothing is posted that could be found again."""

    def answering(self, answer_id: int) -> None:
        self.answer_id = answer_id

    @property
    def finished(self) -> list[str]:
        return [value for kind, value in self.events if kind == "finish"]

    @property
    def errors(self) -> list[BotError]:
        return [value for kind, value in self.events if kind == "error"]


def make_llm(
    base_url: str, *, timeout: float = 10.0, max_retries: int = 0, first_token_timeout: float = 20.0
) -> LLMClient:
    return LLMClient.create(
        api_key="test-key",
        base_url=base_url,
        timeout=timeout,
        max_retries=max_retries,
        first_token_timeout=first_token_timeout,
    )


def make_service(
    database: Database,
    llm: LLMClient,
    *,
    counter: TokenCounter | None = None,
    model: str = "gpt-4o-mini",
    system_prompt: str = "You are a test assistant.",
    max_output_tokens: int = 256,
    context_windows: dict[str, int] | None = None,
    history_max_tokens: int | None = None,
    tools: ToolRunner | None = None,
    max_tool_rounds: int = 3,
    cache_size: int = 256,
    history: HistoryStore | None = None,
    guards: Sequence[TurnGuard] = (),
    output_moderation: OutputModeration | None = None,
    budget: Budgets | None = None,
    owner: str = "",
    turn_timeout: float | None = 120.0,
    personas: PersonaLookup | None = None,
) -> ConversationService:
    counter = counter or TokenCounter()
    config = TurnConfig(
        default_model=model,
        system_prompt=system_prompt,
        max_output_tokens=max_output_tokens,
        max_tool_rounds=max_tool_rounds,
        history_max_tokens=history_max_tokens,
        context_windows=context_windows,
        turn_timeout=turn_timeout,
    )
    history = history or HistoryStore(database, counter, cache_size=cache_size)
    return ConversationService(
        database=database,
        llm=llm,
        counter=counter,
        config=config,
        history=history,
        tools=tools,
        guards=GuardChain(guards),
        output_moderation=output_moderation,
        budget=budget,
        owner=owner,
        personas=personas,
    )


def key(thread: str = "T1", platform: str = "console") -> ConversationKey:
    return ConversationKey(platform, "W1", "C1", thread)


def incoming(
    text: str,
    event_id: str,
    *,
    thread: str = "T1",
    user_id: str = "U1",
    attachments: tuple[Attachment, ...] = (),
) -> IncomingMessage:
    return IncomingMessage(
        key=key(thread),
        user=ChatUser("console", user_id, f"user {user_id}"),
        text=text,
        event_id=event_id,
        received_at=datetime.now(UTC),
        attachments=attachments,
    )


class Clock:
    """An injectable UTC clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        from datetime import timedelta

        self.now += timedelta(**delta)
