"""Tool approvals in the database (SQLite, and the PostgreSQL of TEST_DATABASE_URL): who may decide, the first
decision wins, and a turn waiting on one process sees a decision recorded by another."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import pytest

from core.db.notices import Notices
from core.db.session import Database
from core.domain.ports import ApprovalDecision, ApprovalRequest, ReplyLocation
from core.domain.types import ChatUser, ConversationKey, IncomingMessage
from core.guards.channel_policy import ChannelPolicies
from core.llm.types import ToolCall
from core.tools.approvals import Approvals
from tests.support import incoming

ASKER = ChatUser("console", "U1", "user U1")


@dataclass
class Prompts:
    """An ApprovalPrompter that keeps what a user would see."""

    asked: list[ApprovalRequest] = field(default_factory=list)
    closed: list[tuple[int, str]] = field(default_factory=list)
    posted: asyncio.Event = field(default_factory=asyncio.Event)

    async def ask(self, request: ApprovalRequest) -> ReplyLocation | None:
        self.asked.append(request)
        self.posted.set()
        return {"message": str(request.id)}

    async def close(
        self, request: ApprovalRequest, where: ReplyLocation | None, decision: ApprovalDecision
    ) -> None:
        self.closed.append((request.id, decision.status))


def approvals_on(
    database: Database,
    prompts: Prompts,
    *,
    timeout: float = 30.0,
    notices: Notices | None = None,
    poll_every: float = 5.0,
) -> Approvals:
    approvals = Approvals(
        database,
        ChannelPolicies(database),
        patterns=("crm__*",),
        timeout=timeout,
        is_admin=lambda user: user.user_id == "OPERATOR",
        notices=notices,
        poll_every=poll_every,
    )
    approvals.register("console", prompts)
    return approvals


def message() -> IncomingMessage:
    return incoming("who is ada?", "e1")


CALL = ToolCall("c1", "crm__lookup", '{"query": "ada"}')


async def test_a_decision_recorded_by_another_process_ends_the_wait(database: Database) -> None:
    other = Database.from_url(database.engine.url.render_as_string(hide_password=False))
    prompts = Prompts()
    waiting, clicked = approvals_on(database, prompts), approvals_on(other, Prompts())
    assert await waiting.gated("crm__lookup", message()) and not await waiting.gated("calculator", message())
    task = asyncio.create_task(waiting.ask(CALL, '{"query": "ada"}', message(), None, None))
    await prompts.posted.wait()
    [request] = prompts.asked
    assert (request.tool, request.user.user_id) == ("crm__lookup", "U1")

    stranger = ChatUser("console", "U2", "mallory")
    assert (await clicked.decide(request.id, stranger, approve=True, workspace_id="W1")).outcome == "refused"
    foreign_admin = ChatUser("console", "U3", "admin elsewhere", is_admin=True)
    refused = await clicked.decide(request.id, foreign_admin, approve=True, workspace_id="W-other")
    assert refused.outcome == "refused"
    assert not task.done()

    click = await clicked.decide(request.id, ASKER, approve=False, workspace_id="W1")
    assert click.outcome == "decided" and click.decision is not None and click.decision.status == "denied"
    approval_id, decision = await task
    assert approval_id == request.id and (decision.status, decision.by) == ("denied", "U1")
    late = await clicked.decide(request.id, ChatUser("console", "OPERATOR", "op"), approve=True)
    assert late.outcome == "closed" and late.decision is not None and late.decision.status == "denied"
    assert prompts.closed == []  # the click's own replica shows a decision; the turn shows only a timeout
    await other.close()


async def test_unanswered_it_times_out_and_a_late_click_changes_nothing(database: Database) -> None:
    prompts = Prompts()
    approvals = approvals_on(database, prompts, timeout=0.5)
    approval_id, decision = await approvals.ask(CALL, "{}", message(), None, None)
    assert decision.status == "timed_out" and prompts.closed == [(approval_id, "timed_out")]
    assert approval_id is not None
    late = await approvals.decide(approval_id, ASKER, approve=True)
    assert late.outcome == "closed" and late.decision is not None and late.decision.status == "timed_out"


async def test_an_admin_of_the_workspace_or_an_operator_may_decide_for_the_asker(database: Database) -> None:
    prompts = Prompts()
    approvals = approvals_on(database, prompts)
    for user, workspace in (
        (ChatUser("console", "U3", "ws admin", is_admin=True), "W1"),
        (ChatUser("console", "OPERATOR", "operator"), None),
    ):
        prompts.posted.clear()
        task = asyncio.create_task(approvals.ask(CALL, "{}", message(), None, None))
        await prompts.posted.wait()
        click = await approvals.decide(prompts.asked[-1].id, user, approve=True, workspace_id=workspace)
        assert click.outcome == "decided"
        _, decision = await task
        assert decision.approved and decision.by == user.user_id


async def test_a_platform_without_buttons_cannot_approve(database: Database) -> None:
    approvals = approvals_on(database, Prompts())
    slack = IncomingMessage(
        ConversationKey("slack", "T1", "C1", "1.2"),
        ChatUser("slack", "U1", "u"),
        "hi",
        "e2",
        message().received_at,
    )
    approval_id, decision = await approvals.ask(CALL, "{}", slack, None, None)
    assert approval_id is None and decision.status == "unavailable" and not decision.approved


async def test_a_click_on_another_replica_wakes_the_waiting_turn_at_once(database: Database) -> None:
    """The waiting replica reads its row once an hour here (and the approval lasts an hour): only the
    ``approval`` notice the clicked replica sends can end the wait."""
    if database.is_sqlite:
        pytest.skip("SQLite serves one process: a click reaches the waiting turn's own process")
    other = Database.from_url(database.engine.url.render_as_string(hide_password=False))
    here, there = Notices(database), Notices(other)
    prompts = Prompts()
    waiting = approvals_on(database, prompts, timeout=3600.0, notices=here, poll_every=3600.0)
    clicked = approvals_on(other, Prompts(), notices=there)
    async with here.listening():
        task = asyncio.create_task(waiting.ask(CALL, '{"query": "ada"}', message(), None, None))
        await prompts.posted.wait()
        [request] = prompts.asked
        assert (await clicked.decide(request.id, ASKER, approve=True, workspace_id="W1")).outcome == "decided"
        approval_id, decision = await asyncio.wait_for(task, 30)  # not the poll: it comes in an hour
    assert approval_id == request.id and decision.approved and decision.by == "U1"
    await other.close()


class StoppablePause:
    """A waiting turn's TurnPause whose Stop button a test presses."""

    def __init__(self) -> None:
        self.pressed = asyncio.Event()

    def waiting(self, seconds: float) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    @property
    def stopped(self) -> bool:
        return self.pressed.is_set()

    async def until_stopped(self) -> None:
        await self.pressed.wait()


async def test_stop_ends_the_wait_at_once_between_polls(database: Database) -> None:
    """The row is read once an hour here (and the approval lasts an hour): only the Stop signal itself can end
    the wait, which then closes the approval as stopped."""
    notices = Notices(database)
    prompts = Prompts()
    waiting = approvals_on(database, prompts, timeout=3600.0, notices=notices, poll_every=3600.0)
    pause = StoppablePause()
    async with notices.listening():
        task = asyncio.create_task(waiting.ask(CALL, '{"query": "ada"}', message(), None, pause))
        await prompts.posted.wait()
        [request] = prompts.asked
        pause.pressed.set()
        approval_id, decision = await asyncio.wait_for(task, 30)  # not the poll: it comes in an hour
    assert approval_id == request.id and decision.status == "stopped" and not decision.approved
