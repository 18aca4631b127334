"""What adapters and commands use of the turn: ``ConversationService``, a thin facade over the turn pipeline
(pipeline.py) and the conversation registry (conversations.py), wired to the SQL store and the history cache.
The map of the package is in core/turn/__init__.py."""

from __future__ import annotations

from core.db.session import Database
from core.domain.errors import BotError
from core.domain.ports import ModelClient, NoBudget, OutputModerator, PersonaLookup, Replier, ToolRunner
from core.domain.types import ConversationKey, IncomingMessage
from core.guards.bans import fresh_bans
from core.guards.chain import GuardChain
from core.llm.tokens import TokenCounter
from core.metrics import Metrics
from core.money.budgets import Budgets
from core.turn.config import TurnConfig
from core.turn.conversations import Conversations
from core.turn.history import HistoryStore
from core.turn.ordering import KeyedLocks
from core.turn.pipeline import Footer, TurnOutcome, TurnPipeline, TurnPorts
from core.turn.store import SqlTurnStore
from core.turn.summary_store import SqlSummaries
from core.turn.user_message import MAX_INLINE_TEXT_CHARS

__all__ = ["MAX_INLINE_TEXT_CHARS", "ConversationService", "TurnConfig", "TurnOutcome"]


class ConversationService:
    """Runs turns (idempotent, ordered per conversation, concurrent across conversations) and answers the
    conversation commands; ``budget`` is None when no limits are kept."""

    def __init__(
        self,
        *,
        database: Database,
        llm: ModelClient,
        counter: TokenCounter,
        config: TurnConfig,
        history: HistoryStore | None = None,
        guards: GuardChain | None = None,
        budget: Budgets | None = None,
        tools: ToolRunner | None = None,
        metrics: Metrics | None = None,
        footer: Footer | None = None,
        output_moderation: OutputModerator | None = None,
        owner: str = "",
        personas: PersonaLookup | None = None,
    ) -> None:
        history = history or HistoryStore(database, counter)
        self._history = history
        locks = KeyedLocks()  # shared: a command on a conversation waits for its turn in progress
        self._guards = guards or GuardChain()
        self._conversations = Conversations(database, history, locks, config.default_model, personas)
        ports = TurnPorts(
            store=SqlTurnStore(database, ledger=budget, owner=owner),
            conversations=self._conversations,
            history=history,
            llm=llm,
            budget=budget if budget is not None else NoBudget(),
            tools=tools,
            output=output_moderation,
            summaries=SqlSummaries(database) if config.history_summary else None,
            personas=personas,
        )
        self._pipeline = TurnPipeline(
            ports,
            counter=counter,
            config=config,
            guards=self._guards,
            locks=locks,
            metrics=metrics,
            footer=footer,
            price=budget.cost_micros if budget is not None else None,
        )
        self.metrics = self._pipeline.metrics
        self.running = self._pipeline.running  # this process's running turns (the Stop button)

    async def handle(
        self, message: IncomingMessage, replier: Replier, *, model: str | None = None
    ) -> TurnOutcome:
        """Answer ``message`` through ``replier``; a redelivered ``event_id`` is answered only once."""
        return await self._pipeline.handle(message, replier, model=model)

    async def screen(self, message: IncomingMessage) -> IncomingMessage:
        """Run the turn guards (ban, rate limit, limits, redaction, moderation): first step of every turn, and
        all there is for a message that is not a chat turn, e.g. the prompt of ``/ai image``; raises the
        guard's BotError. The ban is read from the database, not this replica's cache: no claim reads it
        here, and what follows costs money."""
        with fresh_bans():
            return await self._guards.check(message)

    async def admit(self, message: IncomingMessage) -> bool:
        """The identity-only guards (ban, rate limit, input limits of what the event declares), for an adapter
        to run before it downloads a file or calls its platform for the user; ``message`` carries no files
        yet. False: hand that same message to ``handle``, which refuses it with the guard's message, once per
        event and without counting it twice against the rate limit."""
        try:
            await self._guards.admit(message)
        except BotError:
            return False
        return True

    async def exists(self, key: ConversationKey) -> bool:
        """Whether ``key`` already holds a conversation (a thread the assistant has taken part in)."""
        return await self._conversations.exists(key)

    async def conversation_id(self, key: ConversationKey, started_by: str | None = None) -> int:
        return await self._conversations.conversation_id(key, started_by)

    async def started_by(self, key: ConversationKey) -> str | None:
        """The user id that started the conversation of ``key`` (None: no conversation, or not known)."""
        return await self._conversations.started_by(key)

    async def model_of(self, key: ConversationKey) -> str:
        """The model the next turn of ``key`` uses."""
        return await self._conversations.model_of(key)

    async def set_model(self, key: ConversationKey, model: str | None, by: str | None = None) -> None:
        """Use ``model`` for later turns of ``key`` (None: back to the default); ``by`` (a user id) starts
        the conversation when there is none yet."""
        await self._conversations.set_model(key, model, by)

    async def last_thread(self, platform: str, workspace_id: str, channel_id: str, user_id: str) -> str:
        """The thread of the newest turn ``user_id`` sent in the channel, from any replica ("" if none)."""
        return await self._conversations.last_thread(platform, workspace_id, channel_id, user_id)

    def forget_history(self, conversation_id: int) -> None:
        """Drop this process's cached history window of a conversation (its messages were hidden)."""
        self._history.forget(conversation_id)

    async def reset(self, key: ConversationKey) -> int:
        """Hide the history of ``key`` from later turns (kept for audit until retention); returns how many
        messages were hidden. Waits for a turn in progress in that conversation."""
        return await self._conversations.reset(key)
