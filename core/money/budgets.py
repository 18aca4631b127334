"""Budgets: worst-case cost reserved atomically before every model call, settled with real usage after.

A turn holds its first call's worst case (and one answer after it when tools are offered) and extends the
hold before each further call (``extend``), so a budget is not blocked by rounds a turn may never make.

Limits exist per scope (user, channel, workspace, global) and period (UTC day, calendar month), in USD
and/or tokens: defaults from settings, per-subject overrides from admins (``budgets`` table). Each limited
budget has a counter row per period holding what was spent and what is held by calls in flight; a
reservation checks and raises the holds of every applicable counter in one transaction (rows locked in id
order on PostgreSQL; the database lock of ``BEGIN IMMEDIATE`` on SQLite), so concurrent turns never overspend.

Without default limits most turns have none: whether a turn has any is answered from a per-replica cache of
the overrides (``ReplicaCache``), which a ``budget`` notice empties on every replica when an override is set
or cleared (``limits_changed``, in the change's transaction), as does a turn's claim that finds the count of
setting changes moved (another process's change, on SQLite: before the turn reserves); a turn that has
limits reads them again in the transaction that holds against them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, bindparam, delete, func, or_, select, true, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from core.db.models import Budget, BudgetCounter, Reservation, UsageRecord
from core.db.notice_board import Notice
from core.db.notices import Notices
from core.db.replica_cache import SAFETY_TTL, ReplicaCache
from core.db.repositories import Executor, SyncExecutor, insert_for
from core.db.session import Database
from core.domain.clock import Clock, humanize, utc_now
from core.domain.errors import QuotaExceeded
from core.domain.ports import CallPlan, CallUsage, Hold
from core.domain.types import ChatUser, ConversationKey, IncomingMessage
from core.money.periods import PERIODS, period_end, period_key, period_start
from core.money.pricing import ChatCost, PriceTable, format_usd

log = logging.getLogger(__name__)

SCOPES = ("user", "channel", "workspace", "global")
_OWNER = {
    "user": "Your",
    "channel": "This channel's",
    "workspace": "This workspace's",
    "global": "The bot's overall",
}
_PERIOD_WORD = {"day": "daily", "month": "monthly"}

Defaults = Mapping[tuple[str, str], tuple[int | None, int | None]]  # (scope, period) -> (µ$, tokens)
_COUNTERS = cast(Table, BudgetCounter.__table__)
_RESERVATIONS = cast(Table, Reservation.__table__)
_USAGE = cast(Table, UsageRecord.__table__)

Subjects = tuple[str, ...]  # a call's subject of each scope, in SCOPES order
Overrides = dict[tuple[str, str], tuple[int | None, int | None]]  # (scope, period) -> (µ$, tokens)


def subject_of(scope: str, key: ConversationKey, user_id: str) -> str:
    """The budget subject a conversation and user fall under, e.g. ``slack:U123`` or ``discord:G1:C2``."""
    if scope == "user":
        return f"{key.platform}:{user_id}"
    if scope == "channel":
        return f"{key.platform}:{key.workspace_id}:{key.channel_id}"
    if scope == "workspace":
        return f"{key.platform}:{key.workspace_id}"
    return "*"


def ledger_filter(scope: str, subject: str) -> ColumnElement[bool]:
    """Rows of the usage ledger that count against ``scope``/``subject``."""
    if scope == "global":
        return true()
    parts = subject.split(":", 2)
    if scope == "user":
        return (UsageRecord.platform == parts[0]) & (UsageRecord.user_id == parts[1])
    if scope == "workspace":
        return (UsageRecord.platform == parts[0]) & (UsageRecord.workspace_id == parts[1])
    return (
        (UsageRecord.platform == parts[0])
        & (UsageRecord.workspace_id == parts[1])
        & (UsageRecord.channel_id == parts[2])
    )


@dataclass(frozen=True, slots=True)
class BudgetLimit:
    scope: str
    subject: str
    period: str
    micros: int | None
    tokens: int | None
    overridden: bool = False


@dataclass(frozen=True, slots=True)
class BudgetStanding:
    """One limit that applies to a user now: what its period has spent, what answers in progress hold, and
    what is left (None where the limit has no USD or no token part)."""

    limit: BudgetLimit
    spent_micros: int
    spent_tokens: int
    held_micros: int
    held_tokens: int
    resets_at: datetime

    @property
    def left_micros(self) -> int | None:
        return (
            None
            if self.limit.micros is None
            else left_of(self.limit.micros, self.spent_micros, self.held_micros)
        )

    @property
    def left_tokens(self) -> int | None:
        return (
            None
            if self.limit.tokens is None
            else left_of(self.limit.tokens, self.spent_tokens, self.held_tokens)
        )


def left_of(limit: int, spent: int, held: int) -> int:
    """What a limit leaves once ``spent`` and ``held`` (by answers in progress) are counted."""
    return max(0, limit - spent - held)


@dataclass(frozen=True, slots=True)
class PeriodUsage:
    period: str
    spent_micros: int
    tokens: int
    limit: BudgetLimit | None
    resets_at: datetime


class Budgets:
    """The BudgetGate of the core, and the read side users and admins see."""

    def __init__(
        self,
        database: Database,
        prices: PriceTable,
        defaults: Defaults,
        *,
        clock: Clock = utc_now,
        reservation_ttl: timedelta = timedelta(minutes=15),
        turn_cap_micros: int | None = None,
        ttl: float = SAFETY_TTL,
    ) -> None:
        self._db = database
        self._overrides: ReplicaCache[Subjects, Overrides] = ReplicaCache(ttl=ttl)
        database.board.subscribe("budget", self._changed)
        database.board.on_start_over(self._overrides.clear)
        self.prices = prices
        self.defaults = {key: value for key, value in defaults.items() if value != (None, None)}
        self._clock = clock
        self._ttl = reservation_ttl
        self._turn_cap = turn_cap_micros
        self._next_sweep = clock()

    # ---- limits --------------------------------------------------------------------------------------------

    async def limits_for(self, session: Executor, key: ConversationKey, user_id: str) -> list[BudgetLimit]:
        """Every limit on a call by ``user_id`` in ``key``'s channel; overrides win over defaults."""
        subjects = _subjects(key, user_id)
        return self._limits(subjects, await _read_overrides(session, subjects))

    async def cached_limits(self, key: ConversationKey, user_id: str) -> list[BudgetLimit]:
        """``limits_for`` from this replica's cache of the overrides (read when not cached): no statement
        for a call whose subjects were read before and have not changed since, on any replica."""
        subjects = _subjects(key, user_id)
        found, overrides = self._overrides.get(subjects)
        if not found or overrides is None:
            generation = self._overrides.generation
            async with self._db.reading() as connection:
                overrides = await _read_overrides(connection, subjects)
            self._overrides.put(subjects, overrides, generation)
        return self._limits(subjects, overrides)

    def _limits(self, subjects: Subjects, overrides: Overrides) -> list[BudgetLimit]:
        limits = []
        for scope, subject in zip(SCOPES, subjects, strict=True):
            for period in PERIODS:
                override = overrides.get((scope, period))
                if override is not None:
                    if override != (None, None):
                        limits.append(BudgetLimit(scope, subject, period, override[0], override[1], True))
                elif (scope, period) in self.defaults:
                    micros, tokens = self.defaults[(scope, period)]
                    limits.append(BudgetLimit(scope, subject, period, micros, tokens))
        return limits

    def _changed(self, _notice: Notice) -> None:
        self._overrides.clear()  # overrides change rarely: every cached subject is read again

    # ---- BudgetGate ---------------------------------------------------------------------------------------

    def worst_case(self, plan: CallPlan) -> ChatCost:
        """Each planned round with the full prompt so far uncached and the longest allowed answer."""
        micros = tokens = 0
        for round_index in range(plan.rounds):
            prompt = plan.prompt_tokens + round_index * max(plan.growth_per_round, plan.max_output_tokens)
            cost = self.prices.worst_case(
                plan.model, prompt_tokens=prompt, max_output_tokens=plan.max_output_tokens
            )
            micros += cost.micros
            tokens += cost.tokens
        return ChatCost(micros, tokens)

    def affordable_rounds(self, plan: CallPlan) -> int:
        if self._turn_cap is None:
            return plan.rounds
        rounds = plan.rounds
        while rounds > 1 and self.worst_case(replace(plan, rounds=rounds)).micros > self._turn_cap:
            rounds -= 1
        return rounds

    async def reserve(self, plan: CallPlan) -> Hold:
        return await self._hold(plan.message, self.worst_case(plan))

    async def extend(self, hold: Hold, usages: Sequence[CallUsage], plan: CallPlan) -> Hold:
        """Raise ``hold`` to what ``usages`` cost plus the worst case of ``plan``: one transaction taking the
        row locks ``reserve`` takes (the counters, in id order), so concurrent turns never overspend. Nothing
        is written when the hold already covers it. Raises QuotaExceeded and leaves the hold as it was."""
        micros = tokens = 0
        for call in usages:
            cost = self._price(call)
            micros += cost.micros
            tokens += cost.tokens
        worst = self.worst_case(plan)
        more = ChatCost(
            max(0, micros + worst.micros - hold.micros), max(0, tokens + worst.tokens - hold.tokens)
        )
        if not more.micros and not more.tokens:
            return hold
        if hold.reservation_id is not None:
            await self._raise_hold(hold, more)
        return replace(hold, micros=hold.micros + more.micros, tokens=hold.tokens + more.tokens)

    async def reserve_image(self, message: IncomingMessage, *, model: str, size: str, quality: str) -> Hold:
        """Hold the price of one generated image (images count against USD limits, not token limits)."""
        price = self.prices.image_cost(model, size=size, quality=quality)
        # Not from the cache of overrides: `/ai image` is no turn, no claim reads the count of setting changes
        # first, so a quota set by another process (SQLite) would be trusted stale for up to the cache's TTL.
        return await self._hold(message, ChatCost(price, 0), cached=False)

    async def settle_image(
        self, handle: Hold, *, model: str, size: str, quality: str, conversation_id: int | None
    ) -> int:
        """Record the generated image in the ledger and swap the hold for its price; returns the price."""
        message = handle.message
        now = self._clock()
        micros = self.prices.image_cost(model, size=size, quality=quality)
        async with self._db.unit_of_work() as session:
            session.add(
                UsageRecord(
                    platform=message.key.platform,
                    workspace_id=message.key.workspace_id,
                    channel_id=message.key.channel_id,
                    conversation_id=conversation_id,
                    user_id=message.user.user_id,
                    model=model,
                    kind="image",
                    input_tokens=0,
                    cached_tokens=0,
                    output_tokens=0,
                    images=1,
                    cost_micros=micros,
                    created_at=now,
                )
            )
            user_id = message.user.user_id
            await session.run_sync(lambda sync: _apply(sync, handle, message.key, user_id, micros, 0, now))
        return micros

    async def _hold(self, message: IncomingMessage, cost: ChatCost, *, cached: bool = True) -> Hold:
        """``cached``: whether there are limits at all may be answered from the cache of overrides (a turn's
        claim has dropped it if a setting changed since); otherwise the limits are read in the transaction."""
        now = self._clock()
        if now >= self._next_sweep:
            self._next_sweep = now + timedelta(seconds=60)
            await self.expire()
        # Limits only where admins set them (no defaults): most turns have none, and need no write lock.
        if cached and not self.defaults and not await self.cached_limits(message.key, message.user.user_id):
            return Hold(None, cost.micros, cost.tokens, message)
        async with self._db.transaction() as connection:  # the limits read with the holds they check
            limits = await self.limits_for(connection, message.key, message.user.user_id)
            if not limits:
                return Hold(None, cost.micros, cost.tokens, message)
            counters = await self._lock_counters(connection, limits, now)
            for limit in limits:
                counter = counters[(limit.scope, limit.subject, limit.period)]
                self._check(limit, counter, cost, now)
            counter_ids = sorted(counter.id for counter in counters.values())
            held = {"h_ids": counter_ids, "h_micros": cost.micros, "h_tokens": cost.tokens}
            await connection.execute(_hold_statement(), held)
            reservation = {
                "counter_ids": counter_ids,
                "amount_micros": cost.micros,
                "tokens": cost.tokens,
                "created_at": now,
                "expires_at": now + self._ttl,
                "event_id": message.event_id,
            }
            reservation_id = (await connection.execute(_reservation_insert(), reservation)).scalar_one()
            return Hold(int(reservation_id), cost.micros, cost.tokens, message)

    async def _raise_hold(self, hold: Hold, more: ChatCost) -> None:
        """The reservation raised first (its row locked: a concurrent ``expire``, ``release`` or settlement
        waits for this transaction, or this one finds it gone), then its counters, locked in id order."""
        message = hold.message
        now = self._clock()
        async with self._db.transaction() as connection:
            raised = {
                "r_id": hold.reservation_id,
                "r_micros": more.micros,
                "r_tokens": more.tokens,
                "r_until": now + self._ttl,
            }
            reservation = (await connection.execute(_reservation_raise(), raised)).one_or_none()
            if reservation is None:  # given back already: expired (the turn outlived its TTL) or released
                raise QuotaExceeded(detail=f"reservation {hold.reservation_id} expired")
            limits = {
                (limit.scope, limit.subject, limit.period): limit
                for limit in await self.limits_for(connection, message.key, message.user.user_id)
            }
            counter_ids = sorted(reservation[0])
            counters = list(await connection.execute(_counters_by_id(), {"c_ids": counter_ids}))
            for counter in counters:
                limit = limits.get((counter.scope, counter.subject, counter.period))
                if limit is not None:
                    self._check(limit, counter, more, now)  # raises: the reservation's raise rolls back
            held = {"h_ids": counter_ids, "h_micros": more.micros, "h_tokens": more.tokens}
            await connection.execute(_hold_statement(), held)

    async def keep(self, hold: Hold, seconds: float) -> None:
        """The turn waits up to ``seconds`` for a person (a tool approval): its reservation is not swept as
        abandoned before the wait ends plus the usual TTL (a crash meanwhile still releases it then)."""
        if hold.reservation_id is None:
            return
        until = self._clock() + timedelta(seconds=seconds) + self._ttl
        async with self._db.unit_of_work() as session:
            await session.execute(
                update(Reservation)
                .where(Reservation.id == hold.reservation_id, Reservation.expires_at < until)
                .values(expires_at=until)
            )

    async def settle_in(self, connection: Executor, hold: Hold, usages: Sequence[CallUsage]) -> None:
        """``settle_on`` inside the caller's transaction (a session or a connection)."""
        await connection.run_sync(self.settle_on, hold, usages)

    def settle_on(self, connection: SyncExecutor, hold: Hold, usages: Sequence[CallUsage]) -> None:
        """Write the priced ledger rows, swap the hold for the real spend, inside the caller's transaction
        (the turn's: a turn is stored and charged together or not at all). Core statements only, run
        synchronously: the turn's transaction is one greenlet (``Database.transact``)."""
        message = hold.message
        key = message.key
        now = self._clock()
        spent_micros = spent_tokens = 0
        rows = []
        for call in usages:
            cost = self._price(call)
            rows.append(
                {
                    "platform": key.platform,
                    "workspace_id": key.workspace_id,
                    "channel_id": key.channel_id,
                    "conversation_id": call.conversation_id,
                    "user_id": message.user.user_id,
                    "model": call.model,
                    "kind": "chat",
                    "input_tokens": call.usage.prompt_tokens,
                    "cached_tokens": call.usage.cached_tokens,
                    "output_tokens": call.usage.completion_tokens,
                    "images": 0,
                    "cost_micros": cost.micros,
                    "created_at": now,
                }
            )
            spent_micros += cost.micros
            spent_tokens += cost.tokens
        if rows:
            connection.execute(_usage_insert(), rows)
        _apply(connection, hold, key, message.user.user_id, spent_micros, spent_tokens, now)

    async def release(self, hold: Hold) -> None:
        if hold.reservation_id is None:
            return
        await self._db.transact(
            lambda connection: _give_back(connection, _reservation_take(), _hold_id(hold))
        )

    async def release_event(self, event_id: str) -> int:
        """Give back every hold of the turn ``event_id`` (its replica stopped mid-turn); returns how many."""
        return await self._db.transact(
            lambda connection: _give_back(connection, _event_reservations_take(), {"event_id": event_id})
        )

    async def expire(self) -> int:
        """Give back holds of reservations whose process never settled them (crashed); returns how many.
        Holds another transaction has locked (being settled, released or extended) are left to it."""
        now = self._clock()
        released = await self._db.transact(
            lambda connection: _give_back(connection, _expired_take(), {"now": now})
        )
        if released:
            log.warning("released %d expired budget reservation(s)", released)
        return released

    # ---- read side -----------------------------------------------------------------------------------------

    async def usage_of(self, user: ChatUser, key: ConversationKey) -> list[PeriodUsage]:
        """The caller's spend today and this month, with their limits."""
        now = self._clock()
        subject = subject_of("user", key, user.user_id)
        async with self._db.reader() as session:
            limits = {
                limit.period: limit
                for limit in await self.limits_for(session, key, user.user_id)
                if limit.scope == "user"
            }
            result = []
            for period in PERIODS:
                row = (
                    await session.execute(
                        select(
                            func.coalesce(func.sum(UsageRecord.cost_micros), 0),
                            func.coalesce(func.sum(UsageRecord.input_tokens + UsageRecord.output_tokens), 0),
                        ).where(
                            ledger_filter("user", subject),
                            UsageRecord.created_at >= period_start(period, now),
                        )
                    )
                ).one()
                result.append(
                    PeriodUsage(period, int(row[0]), int(row[1]), limits.get(period), period_end(period, now))
                )
        return result

    async def standing(
        self, key: ConversationKey, user_id: str, *, scopes: Sequence[str] = SCOPES
    ) -> list[BudgetStanding]:
        """Every limit of ``scopes`` on a call by ``user_id`` in ``key``, with what it has left now: the
        counters reservations keep (spent and held), or the ledger where no call of this period reserved yet.
        At most one query per limit (eight), whatever the ledger holds."""
        now = self._clock()
        async with self._db.reader() as session:
            limits = [
                limit for limit in await self.limits_for(session, key, user_id) if limit.scope in scopes
            ]
            if not limits:
                return []
            keys = [
                (limit.scope, limit.subject, limit.period, period_key(limit.period, now)) for limit in limits
            ]
            columns = tuple_(
                BudgetCounter.scope, BudgetCounter.subject, BudgetCounter.period, BudgetCounter.period_key
            )
            rows = await session.execute(select(BudgetCounter).where(columns.in_(keys)))
            counters = {(row.scope, row.subject, row.period): row for row in rows.scalars()}
            result = []
            for limit in limits:
                counter = counters.get((limit.scope, limit.subject, limit.period))
                if counter is not None:
                    spent = (counter.spent_micros, counter.spent_tokens)
                    held = (counter.reserved_micros, counter.reserved_tokens)
                else:
                    spent, held = (
                        await _ledger_spent(session, limit.scope, limit.subject, limit.period, now),
                        (0, 0),
                    )
                result.append(
                    BudgetStanding(limit, spent[0], spent[1], held[0], held[1], period_end(limit.period, now))
                )
        return result

    def _price(self, call: CallUsage) -> ChatCost:
        usage = call.usage
        return self.prices.chat_cost(
            call.model,
            input_tokens=usage.prompt_tokens,
            cached_tokens=usage.cached_tokens,
            output_tokens=usage.completion_tokens,
        )

    def cost_micros(self, usages: Sequence[CallUsage]) -> int:
        """What ``usages`` cost, in micro-dollars (the turn's log line)."""
        return sum(self._price(call).micros for call in usages)

    def cost_footer(self, usages: Sequence[CallUsage]) -> str:
        micros = tokens = 0
        for call in usages:
            cost = self._price(call)
            micros += cost.micros
            tokens += cost.tokens
        return f"{tokens:,} tokens · {format_usd(micros)}"

    # ---- internals -----------------------------------------------------------------------------------------

    def _check(self, limit: BudgetLimit, counter: Any, cost: ChatCost, now: datetime) -> None:
        """``counter``: a BudgetCounter or a row with its spent and reserved columns."""
        owner = _OWNER[limit.scope]
        word = _PERIOD_WORD[limit.period]
        resets = period_end(limit.period, now)
        when = f"It resets at {resets:%Y-%m-%d %H:%M} UTC (in {humanize(resets - now)})."
        if limit.micros is not None:
            used = counter.spent_micros + counter.reserved_micros
            if used + cost.micros > limit.micros:
                left = left_of(limit.micros, counter.spent_micros, counter.reserved_micros)
                busy = " (part of it is held by answers in progress)" if counter.reserved_micros else ""
                raise QuotaExceeded(
                    f"{owner} {word} budget of {format_usd(limit.micros)} is used up: {format_usd(left)} is "
                    f"left{busy} and an answer can cost up to {format_usd(cost.micros)}. {when}",
                    detail=f"{limit.scope}:{limit.subject}:{limit.period}",
                )
        if limit.tokens is not None:
            used = counter.spent_tokens + counter.reserved_tokens
            if used + cost.tokens > limit.tokens:
                left = left_of(limit.tokens, counter.spent_tokens, counter.reserved_tokens)
                raise QuotaExceeded(
                    f"{owner} {word} budget of {limit.tokens:,} tokens is used up: {left:,} tokens are "
                    f"left and an answer can use up to {cost.tokens:,}. {when}",
                    detail=f"{limit.scope}:{limit.subject}:{limit.period}",
                )

    async def _lock_counters(
        self, connection: AsyncConnection, limits: Sequence[BudgetLimit], now: datetime
    ) -> dict[tuple[str, str, str], Any]:
        """The counters of ``limits`` in this period, locked in id order (rows with id, scope, subject,
        period, spent and reserved); a missing one is created first from what the ledger holds."""
        keys = [(limit.scope, limit.subject, limit.period, period_key(limit.period, now)) for limit in limits]
        rows = list(await connection.execute(_locked_counters(), {"keys": keys}))
        if len(rows) < len(keys):
            present = {(row.scope, row.subject, row.period) for row in rows}
            for scope, subject, period, key in keys:
                if (scope, subject, period) in present:
                    continue
                # First use in this period (or a limit just set): start from what the ledger already holds.
                spent = await _ledger_spent(connection, scope, subject, period, now)
                await connection.execute(
                    insert_for(connection, BudgetCounter)
                    .values(
                        scope=scope,
                        subject=subject,
                        period=period,
                        period_key=key,
                        spent_micros=int(spent[0]),
                        spent_tokens=int(spent[1]),
                        reserved_micros=0,
                        reserved_tokens=0,
                    )
                    .on_conflict_do_nothing(index_elements=["scope", "subject", "period", "period_key"])
                )
            rows = list(await connection.execute(_locked_counters(), {"keys": keys}))
        return {(row.scope, row.subject, row.period): row for row in rows}


def _hold_id(hold: Hold) -> dict[str, Any]:
    """``hold``'s reservation as the parameter of ``_reservation_take``."""
    return {"r_id": hold.reservation_id}


def _give_back(connection: SyncExecutor, take: Any, parameters: dict[str, Any]) -> int:
    """Delete the reservations ``take`` selects (a DELETE … RETURNING of their counter ids, amount and
    tokens), then take what those held off their counters, locked in id order; returns how many. Only the
    transaction whose DELETE removed a reservation gives its hold back: one that finds it gone (settled,
    released or expired by another, committed meanwhile) gives nothing back."""
    owed: dict[int, tuple[int, int]] = {}
    taken = list(connection.execute(take, parameters))
    for counter_ids, micros, tokens in taken:
        for counter_id in set(counter_ids):
            held = owed.get(counter_id, (0, 0))
            owed[counter_id] = (held[0] + micros, held[1] + tokens)
    if owed:  # one UPDATE per counter, in id order: the row locks taken in the order every holder takes them
        changes = [
            {
                "u_id": counter_id,
                "u_spent_micros": 0,
                "u_spent_tokens": 0,
                "u_held_micros": m,
                "u_held_tokens": t,
            }
            for counter_id, (m, t) in sorted(owed.items())
        ]
        connection.execute(_counter_update(), changes)
    return len(taken)


def _apply(
    session: SyncExecutor,
    handle: Hold,
    key: ConversationKey,
    user_id: str,
    micros: int,
    tokens: int,
    now: datetime,
) -> None:
    """Take ``handle``'s hold off its counters and add what was spent to this period's counters of every
    scope (those that exist: a limited budget's), with Core statements: the reservation deleted first (only
    a hold this DELETE removed is taken off: one expired or released meanwhile was given back by whoever
    removed it, and the spend alone is charged), the counters locked in id order, then changed by what they
    are owed (one UPDATE per counter, one round trip)."""
    reservation = None
    if handle.reservation_id:
        reservation = session.execute(_reservation_take(), _hold_id(handle)).one_or_none()
    held = set(reservation[0]) if reservation is not None else set()
    subjects = {scope: subject_of(scope, key, user_id) for scope in SCOPES}
    keys = {period: period_key(period, now) for period in PERIODS}
    current = {(scope, subjects[scope], period, keys[period]) for scope in SCOPES for period in PERIODS}
    parameters: dict[str, Any] = {f"subject_{scope}": subjects[scope] for scope in SCOPES}
    parameters |= {f"key_{period}": keys[period] for period in PERIODS}
    if held:
        parameters["held"] = sorted(held)
    changes = []
    for counter in session.execute(_counters_statement(bool(held)), parameters):
        counter_id, scope, subject, period, period_key_ = counter
        unheld = reservation is not None and counter_id in held
        spent = (scope, subject, period, period_key_) in current
        if unheld or spent:
            changes.append(
                {
                    "u_id": counter_id,
                    "u_spent_micros": micros if spent else 0,
                    "u_spent_tokens": tokens if spent else 0,
                    "u_held_micros": reservation[1] if unheld and reservation is not None else 0,
                    "u_held_tokens": reservation[2] if unheld and reservation is not None else 0,
                }
            )
    if changes:
        session.execute(_counter_update(), changes)


async def _ledger_spent(
    session: Executor, scope: str, subject: str, period: str, now: datetime
) -> tuple[int, int]:
    """What the ledger holds against ``scope``/``subject`` in the ``period`` around ``now``: (µ$, tokens)."""
    row = (
        await session.execute(
            select(
                func.coalesce(func.sum(UsageRecord.cost_micros), 0),
                func.coalesce(func.sum(UsageRecord.input_tokens + UsageRecord.output_tokens), 0),
            ).where(
                ledger_filter(scope, subject),
                UsageRecord.created_at >= period_start(period, now),
                UsageRecord.created_at < period_end(period, now),
            )
        )
    ).one()
    return int(row[0]), int(row[1])


def _subjects(key: ConversationKey, user_id: str) -> Subjects:
    return tuple(subject_of(scope, key, user_id) for scope in SCOPES)


async def _read_overrides(executor: AsyncSession | AsyncConnection, subjects: Subjects) -> Overrides:
    parameters = {f"subject_{scope}": subject for scope, subject in zip(SCOPES, subjects, strict=True)}
    rows = await executor.execute(_limits_statement(), parameters)
    return {(row[0], row[1]): (row[2], row[3]) for row in rows}


async def limits_changed(database: Database, session: AsyncSession) -> None:
    """In the transaction that sets or clears a budget override: every replica reads overrides again once
    it commits."""
    await Notices(database).publish("budget", {}, session)


@functools.cache
def _limits_statement() -> Any:
    """The overrides of a call's subjects (one per scope: ``:subject_<scope>``), a statement built once."""
    b = Budget.__table__.c
    return select(b.scope, b.period, b.limit_micros, b.limit_tokens).where(
        or_(*(and_(b.scope == scope, b.subject == bindparam(f"subject_{scope}")) for scope in SCOPES))
    )


@functools.cache
def _counters_statement(with_held: bool) -> Any:
    """The counters a settlement touches (id, scope, subject, period, period key), locked in id order: this
    period's of every scope's subject (``:subject_<scope>``, ``:key_<period>``) and, ``with_held``, those of
    the hold (``:held``, a list)."""
    c = _COUNTERS.c
    condition: Any = or_(
        *(
            and_(
                c.scope == scope,
                c.subject == bindparam(f"subject_{scope}"),
                c.period == period,
                c.period_key == bindparam(f"key_{period}"),
            )
            for scope in SCOPES
            for period in PERIODS
        )
    )
    if with_held:
        condition = condition | c.id.in_(bindparam("held", expanding=True))
    columns = (c.id, c.scope, c.subject, c.period, c.period_key)
    return select(*columns).where(condition).order_by(c.id).with_for_update()


@functools.cache
def _locked_counters() -> Any:
    """The counters of ``:keys`` (scope, subject, period, period key), locked in id order."""
    c = _COUNTERS.c
    keys = tuple_(c.scope, c.subject, c.period, c.period_key).in_(bindparam("keys", expanding=True))
    columns = (
        c.id, c.scope, c.subject, c.period,
        c.spent_micros, c.spent_tokens, c.reserved_micros, c.reserved_tokens,
    )  # fmt: skip
    return select(*columns).where(keys).order_by(c.id).with_for_update()


@functools.cache
def _hold_statement() -> Any:
    """Counters (``:h_ids``) holding ``:h_micros`` and ``:h_tokens`` more."""
    c = _COUNTERS.c
    return (
        update(_COUNTERS)
        .where(c.id.in_(bindparam("h_ids", expanding=True)))
        .values(
            reserved_micros=c.reserved_micros + bindparam("h_micros"),
            reserved_tokens=c.reserved_tokens + bindparam("h_tokens"),
        )
    )


@functools.cache
def _reservation_insert() -> Any:
    return _RESERVATIONS.insert().returning(_RESERVATIONS.c.id)


@functools.cache
def _counter_update() -> Any:
    """One counter (``:u_id``) credited with a spend and debited of a hold (``:u_spent_*``, ``:u_held_*``)."""
    c = _COUNTERS.c
    return (
        update(_COUNTERS)
        .where(c.id == bindparam("u_id"))
        .values(
            spent_micros=c.spent_micros + bindparam("u_spent_micros"),
            spent_tokens=c.spent_tokens + bindparam("u_spent_tokens"),
            reserved_micros=c.reserved_micros - bindparam("u_held_micros"),
            reserved_tokens=c.reserved_tokens - bindparam("u_held_tokens"),
        )
    )


def _taking(condition: Any) -> Any:
    """The reservations ``condition`` selects deleted, returning their counter ids, amount and tokens."""
    r = _RESERVATIONS.c
    return delete(_RESERVATIONS).where(condition).returning(r.counter_ids, r.amount_micros, r.tokens)


@functools.cache
def _reservation_take() -> Any:
    """A reservation (``:r_id``) deleted, returning what it held (no row: given back already)."""
    return _taking(_RESERVATIONS.c.id == bindparam("r_id"))


@functools.cache
def _event_reservations_take() -> Any:
    """The reservations of a turn (``:event_id``) deleted, returning what they held."""
    return _taking(_RESERVATIONS.c.event_id == bindparam("event_id"))


@functools.cache
def _expired_take() -> Any:
    """Up to 500 reservations expired at ``:now`` deleted, returning what they held. On PostgreSQL the
    batch skips rows another transaction has locked (a settlement, release or extension under way: it
    decides), and the outer condition is checked again on a row extended since (``keep``, an extension)."""
    r = _RESERVATIONS.c
    due = r.expires_at < bindparam("now")
    batch = select(r.id).where(due).order_by(r.id).limit(500).with_for_update(skip_locked=True)
    return _taking(and_(due, r.id.in_(batch)))


@functools.cache
def _reservation_raise() -> Any:
    """A reservation (``:r_id``) holding ``:r_micros`` and ``:r_tokens`` more until ``:r_until``, returning
    its counter ids (no row: given back already)."""
    r = _RESERVATIONS.c
    return (
        update(_RESERVATIONS)
        .where(r.id == bindparam("r_id"))
        .values(
            amount_micros=r.amount_micros + bindparam("r_micros"),
            tokens=r.tokens + bindparam("r_tokens"),
            expires_at=bindparam("r_until", type_=r.expires_at.type),
        )
        .returning(r.counter_ids)
    )


@functools.cache
def _counters_by_id() -> Any:
    """The counters of ``:c_ids`` (id, scope, subject, period, spent and reserved), locked in id order."""
    c = _COUNTERS.c
    columns = (
        c.id, c.scope, c.subject, c.period,
        c.spent_micros, c.spent_tokens, c.reserved_micros, c.reserved_tokens,
    )  # fmt: skip
    return (
        select(*columns).where(c.id.in_(bindparam("c_ids", expanding=True))).order_by(c.id).with_for_update()
    )


@functools.cache
def _usage_insert() -> Any:
    return _USAGE.insert()


def defaults_from(settings: Any) -> dict[tuple[str, str], tuple[int | None, int | None]]:
    """Default limits from ``LimitSettings`` (USD as Decimal, tokens as int)."""
    from core.money.pricing import usd

    result: dict[tuple[str, str], tuple[int | None, int | None]] = {}
    for scope in SCOPES:
        for period, word in _PERIOD_WORD.items():
            amount = getattr(settings, f"{scope}_{word}_budget_usd")
            tokens = getattr(settings, f"{scope}_{word}_budget_tokens")
            result[(scope, period)] = (usd(amount) if amount is not None else None, tokens)
    return result
