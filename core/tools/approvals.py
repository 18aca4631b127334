"""Tool approval (issue 15, part 4): tools matching THREADWISE_APPROVAL_TOOLS (or a channel's own patterns)
run only once the asker, or an admin, approves the call.

The request is a ``tool_approvals`` row; the adapter of the conversation's platform shows it with Approve /
Deny (``ApprovalPrompter``). A click may reach any replica: ``decide`` records it in the row, atomically, so
one decision wins. The waiting turn wakes at once on a click handled by its own process (a local event) and,
on PostgreSQL, on the ``approval`` notice the deciding replica sends with its decision (core/db/notices.py);
it still reads its row every ``poll_every`` seconds (5) in case a notice was lost. Without notices (SQLite,
which serves one process) it polls its row every 0.25 s backing off to 1 s. Polling happens only while a
turn waits for a person, so ordinary turns cost nothing. Unanswered within THREADWISE_APPROVAL_TIMEOUT, the
row is marked ``timed_out`` (unless a click won the race) and the prompt says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
from asyncio import FIRST_COMPLETED
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from core.db.models import ToolApproval
from core.db.notices import Notice, Notices
from core.db.session import Database
from core.domain.ports import ApprovalDecision, ApprovalPrompter, ApprovalRequest, TurnPause
from core.domain.types import ChatUser, ConversationKey, IncomingMessage
from core.guards.channel_policy import ChannelPolicies, channel_of
from core.llm.types import ToolCall

log = logging.getLogger(__name__)

PENDING, APPROVED, DENIED, TIMED_OUT = "pending", "approved", "denied", "timed_out"
CANCELLED = "cancelled"  # the turn stopped waiting (shutdown)
STOPPED = "stopped"  # the answer was stopped (its Stop button) while it waited
UNAVAILABLE = "unavailable"  # the request could not be shown (no adapter for the platform, a failed post)
FIRST_POLL = 0.25  # seconds between reads of a waiting approval's row, doubling up to LAST_POLL
LAST_POLL = 1.0
SAFETY_POLL = 5.0  # seconds between reads of a waiting approval's row when decisions arrive as notices
SHOWN_ARGUMENTS = 1500  # characters of the (redacted) arguments shown with the buttons


def matches(name: str, patterns: Sequence[str]) -> bool:
    """Whether tool ``name`` matches one of ``patterns`` (fnmatch-style, case-sensitive: ``github__*``)."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def denial(tool: str, decision: ApprovalDecision, timeout: float) -> str:
    """The tool result the model reads when the call did not run."""
    if decision.status == DENIED:
        return f"The user denied running the tool {tool!r}. It did not run; answer without it."
    if decision.status == TIMED_OUT:
        return (
            f"The tool {tool!r} was not approved within {timeout:g} seconds, so it did not run; "
            "answer without it."
        )
    if decision.status == STOPPED:
        return f"The answer was stopped while the tool {tool!r} waited for approval, so it did not run."
    return f"The tool {tool!r} needs the user's approval, which could not be asked for here; it did not run."


@dataclass(frozen=True, slots=True)
class Click:
    """What a click on Approve or Deny did: ``outcome`` is ``decided`` (``decision`` is the new one),
    ``refused`` (not the asker nor an admin), ``closed`` (decided or timed out before; ``decision`` says
    how) or ``unknown`` (no such approval)."""

    outcome: str
    decision: ApprovalDecision | None = None
    request: ApprovalRequest | None = None


def outcome_sentence(tool: str, decision: ApprovalDecision, timeout: float) -> str:
    """What became of an approval request, as its prompt shows it afterwards; ``tool`` is the tool's name in
    the platform's markup, and each platform puts its own mark (``decision.status``) before the sentence."""
    if decision.status == APPROVED:
        return f"{tool}: Approved by <@{decision.by}>."
    if decision.status == DENIED:
        return f"{tool}: Denied by <@{decision.by}>."
    if decision.status == TIMED_OUT:
        return f"{tool}: Not approved within {timeout:g} s, so it did not run."
    if decision.status == STOPPED:
        return f"{tool}: not run, the answer was stopped."
    return f"{tool}: no longer waited for (the answer it belonged to was interrupted)."


class Approvals:
    def __init__(
        self,
        database: Database,
        policies: ChannelPolicies,
        *,
        patterns: Sequence[str] = (),
        timeout: float = 120.0,
        is_admin: Callable[[ChatUser], bool] = lambda user: False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        notices: Notices | None = None,
        poll_every: float = SAFETY_POLL,
    ) -> None:
        """``is_admin``: operators (THREADWISE_ADMINS); a user the adapter marks ``is_admin`` (a workspace
        admin) may decide in their own workspace. ``notices``: the replica's, through which a decision made
        on another replica wakes the waiting turn (then its row is read every ``poll_every`` seconds)."""
        self._db = database
        self._notices = notices
        self._poll_every = poll_every if notices is not None and notices.is_shared else None
        if notices is not None:
            notices.subscribe("approval", self._decided)
        self._policies = policies
        self.patterns = tuple(patterns)
        self.timeout = timeout
        self._is_admin = is_admin
        self._clock = clock
        self._prompters: dict[str, ApprovalPrompter] = {}
        self._woken: dict[int, asyncio.Event] = {}  # approvals this process waits for

    def register(self, platform: str, prompter: ApprovalPrompter) -> None:
        self._prompters[platform] = prompter

    def unregister(self, platform: str) -> None:
        self._prompters.pop(platform, None)

    async def gated(self, tool: str, message: IncomingMessage) -> bool:
        """Whether ``tool`` needs approval in the message's channel."""
        if matches(tool, self.patterns):
            return True
        extra = (await self._policies.get(channel_of(message.key))).approval
        return bool(extra) and matches(tool, extra or ())

    async def ask(
        self,
        call: ToolCall,
        arguments: str,
        message: IncomingMessage,
        conversation_id: int | None,
        pause: TurnPause | None,
    ) -> tuple[int | None, ApprovalDecision]:
        """Ask the asker to approve ``call`` (``arguments`` redacted) and wait for the decision, at most the
        approval timeout: the approval's id (None when it could not be asked) and the decision."""
        prompter = self._prompters.get(message.key.platform)
        if prompter is None:
            return None, ApprovalDecision(UNAVAILABLE)
        now = self._clock()
        row = ToolApproval(
            platform=message.key.platform,
            workspace_id=message.key.workspace_id,
            channel_id=message.key.channel_id,
            conversation_id=conversation_id,
            event_id=message.event_id[:255],
            user_id=message.user.user_id,
            tool=call.name[:64],
            arguments=arguments,
            status=PENDING,
            expires_at=now + timedelta(seconds=self.timeout),
            created_at=now,
        )
        async with self._db.unit_of_work() as session:
            session.add(row)
            await session.flush()
            approval_id = row.id
        request = ApprovalRequest(
            approval_id,
            message.key,
            message.user,
            call.name,
            arguments[:SHOWN_ARGUMENTS],
            self.timeout,
        )
        woken = self._woken[approval_id] = asyncio.Event()
        try:
            if pause is None:
                return approval_id, await self._asked(prompter, request, woken, None)
            async with pause.waiting(self.timeout + 5.0):  # the prompt's post and the last read too
                return approval_id, await self._asked(prompter, request, woken, pause)
        except asyncio.CancelledError:  # shutdown: a later click must not look like it ran the tool
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await self._expire(approval_id, CANCELLED)
            raise
        finally:
            self._woken.pop(approval_id, None)

    async def _asked(
        self,
        prompter: ApprovalPrompter,
        request: ApprovalRequest,
        woken: asyncio.Event,
        pause: TurnPause | None,
    ) -> ApprovalDecision:
        try:
            where = await prompter.ask(request)
        except Exception:
            log.exception("could not ask for the approval of %s", request.tool)
            return await self._expire(request.id, UNAVAILABLE)
        try:
            decision = await self._wait(request.id, woken, pause)
        except asyncio.CancelledError:  # shutdown: the prompt's buttons go, nothing waits for them now
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    closed = await self._expire(request.id, CANCELLED)
                    await prompter.close(request, where, closed)
            raise
        if decision.status in (TIMED_OUT, STOPPED):
            try:
                await prompter.close(request, where, decision)
            except Exception:
                log.warning("could not show that approval %d timed out", request.id, exc_info=True)
        return decision

    async def _wait(
        self, approval_id: int, woken: asyncio.Event, pause: TurnPause | None = None
    ) -> ApprovalDecision:
        """The decision, once made or timed out; ``stopped`` as soon as the waiting turn is stopped (its Stop
        button)."""
        loop = asyncio.get_running_loop()
        ends = loop.time() + self.timeout
        interval = FIRST_POLL if self._poll_every is None else self._poll_every
        # the Stop button wakes the wait at once, like a click (a turn without one is never stopped)
        stopping = asyncio.ensure_future(pause.until_stopped()) if pause is not None else None
        try:
            while True:
                woken.clear()  # set again by a click or notice from now on (the read below sees earlier ones)
                decision = await self.decision(approval_id)
                if decision is not None and decision.status != PENDING:
                    return decision
                if pause is not None and pause.stopped:
                    return await self._expire(approval_id, STOPPED)
                left = ends - loop.time()
                if left <= 0:
                    break
                clicked = asyncio.ensure_future(woken.wait())
                waits = {clicked} if stopping is None else {clicked, stopping}
                done, _ = await asyncio.wait(waits, timeout=min(interval, left), return_when=FIRST_COMPLETED)
                clicked.cancel()
                if not done and self._poll_every is None:
                    interval = min(interval * 2, LAST_POLL)
        finally:
            if stopping is not None:
                stopping.cancel()
        return await self._expire(approval_id)

    async def _expire(self, approval_id: int, status: str = TIMED_OUT) -> ApprovalDecision:
        """Close the approval (timed out) unless a click was recorded first; the decision that stands."""
        async with self._db.unit_of_work() as session:
            await session.execute(
                update(ToolApproval)
                .where(ToolApproval.id == approval_id, ToolApproval.status == PENDING)
                .values(status=status, decided_at=self._clock())
            )
        decision = await self.decision(approval_id)
        return decision if decision is not None else ApprovalDecision(TIMED_OUT)

    async def decision(self, approval_id: int) -> ApprovalDecision | None:
        async with self._db.reader() as session:
            row = await session.get(ToolApproval, approval_id, populate_existing=True)
            return _decision(row) if row is not None else None

    async def decide(
        self, approval_id: int, user: ChatUser, *, approve: bool, workspace_id: str | None = None
    ) -> Click:
        """A click on Approve (``approve``) or Deny by ``user`` of ``workspace_id`` (where the click came
        from), on whichever replica it arrived."""
        async with self._db.reader() as session:
            row = await session.get(ToolApproval, approval_id)
            request = _request(row, self.timeout) if row is not None else None
        if row is None or request is None:
            return Click("unknown")
        if not self._may_decide(row, user, workspace_id):
            log.info("approval %d: a click by someone else refused", approval_id)
            return Click("refused", _decision(row), request)
        now = self._clock()
        status = APPROVED if approve else DENIED
        async with self._db.unit_of_work() as session:
            result = await session.execute(
                update(ToolApproval)
                .where(
                    ToolApproval.id == approval_id,
                    ToolApproval.status == PENDING,
                    ToolApproval.expires_at > now,
                )
                .values(
                    status=status,
                    decided_by=user.user_id[:64],
                    decided_by_name=user.display_name[:128],
                    decided_at=now,
                )
            )
            won = bool(getattr(result, "rowcount", 0))
            if won and self._notices is not None:  # the waiting turn may be on another replica
                await self._notices.publish("approval", {"id": approval_id}, session)
        woken = self._woken.get(approval_id)
        if woken is not None:
            woken.set()
        current = await self.decision(approval_id)
        if not won:
            return Click("closed", current or ApprovalDecision(TIMED_OUT), request)
        log.info("approval %d %s", approval_id, status)
        return Click("decided", current or ApprovalDecision(status, user.user_id, user.display_name), request)

    def _decided(self, notice: Notice) -> None:
        approval_id = notice["id"]
        if not isinstance(approval_id, int):
            raise TypeError("id")
        woken = self._woken.get(approval_id)
        if woken is not None:
            woken.set()

    async def of_conversation(self, conversation_id: int) -> list[ToolApproval]:
        async with self._db.reader() as session:
            rows = await session.execute(
                select(ToolApproval)
                .where(ToolApproval.conversation_id == conversation_id)
                .order_by(ToolApproval.id)
            )
            return list(rows.scalars())

    def _may_decide(self, row: ToolApproval, user: ChatUser, workspace_id: str | None) -> bool:
        if user.platform != row.platform:
            return False
        if user.user_id == row.user_id or self._is_admin(user):
            return True
        return user.is_admin and workspace_id == row.workspace_id  # an admin of that workspace


def _decision(row: ToolApproval) -> ApprovalDecision:
    return ApprovalDecision(row.status, row.decided_by, row.decided_by_name, row.decided_at)


def _request(row: ToolApproval, timeout: float) -> ApprovalRequest:
    key = ConversationKey(row.platform, row.workspace_id, row.channel_id, "")
    return ApprovalRequest(
        row.id,
        key,
        ChatUser(row.platform, row.user_id, row.user_id),
        row.tool,
        row.arguments[:SHOWN_ARGUMENTS],
        timeout,
    )
