"""The turn pipeline (DESIGN.md §3) against in-memory fakes of its ports: what a user and the budget owner
notice of one turn, without a database or HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from core.domain.errors import (
    INTERRUPTED_MESSAGE,
    BotError,
    ContentBlocked,
    LLMUnavailable,
    QuotaExceeded,
    RateLimited,
    TurnInterrupted,
    TurnTimedOut,
)
from core.domain.ports import CallUsage, OutputModerator, ToolRunner, TurnGuard
from core.guards.chain import GuardChain
from core.llm.tokens import TokenCounter
from core.llm.types import ToolCall, Usage
from core.turn.config import TurnConfig
from core.turn.pipeline import Footer, TurnOutcome, TurnPipeline, TurnPorts
from core.turn.reservation import NO_TOOLS_NOTE
from core.turn.routing import ModelRouter
from tests.fakes.ports import (
    FakeBudget,
    FakeConversations,
    FakeHistory,
    FakeModel,
    FakeStore,
    FakeTools,
    Refuse,
    Reply,
    WordFilter,
)
from tests.support import RecordingReplier, incoming

MODEL = "gpt-4o-mini"
FALLBACK = "gpt-4o"
ENDS_WITHIN = 30.0  # an outer bound for turns that must end by themselves (not a timing assertion)


@dataclass
class Rig:
    pipeline: TurnPipeline
    model: FakeModel
    budget: FakeBudget
    store: FakeStore
    history: FakeHistory
    counter: TokenCounter


def rig(
    replies: list[Reply],
    *,
    budget: FakeBudget | None = None,
    store: FakeStore | None = None,
    tools: ToolRunner | None = None,
    output: OutputModerator | None = None,
    guards: Sequence[TurnGuard] = (),
    fallback: str | None = None,
    footer: Footer | None = None,
    max_tool_rounds: int = 2,
    turn_timeout: float | None = 120.0,
    router: ModelRouter | None = None,
) -> Rig:
    budget = budget or FakeBudget()
    store = store or FakeStore(budget)
    model = FakeModel(list(replies))
    history = FakeHistory()
    ports = TurnPorts(store, FakeConversations(), history, model, budget, tools, output)
    config = TurnConfig(
        default_model=MODEL,
        system_prompt="You are a test.",
        max_output_tokens=256,
        max_tool_rounds=max_tool_rounds,
        fallback_model=fallback,
        turn_timeout=turn_timeout,
        router=router,
    )
    counter = TokenCounter()
    pipeline = TurnPipeline(ports, counter=counter, config=config, guards=GuardChain(guards), footer=footer)
    return Rig(pipeline, model, budget, store, history, counter)


def updates(replier: RecordingReplier) -> list[str]:
    return [value for kind, value in replier.events if kind == "update"]


async def test_an_answered_turn_streams_finishes_stores_and_settles_with_the_real_usage() -> None:
    t = rig([Reply("Hello there, Ada.", usage=Usage(57, 0, 6))])
    replier = RecordingReplier()

    assert await t.pipeline.handle(incoming("My name is Ada.", "e1"), replier) is TurnOutcome.ANSWERED

    assert replier.events[0] == ("start", None)
    assert updates(replier) == ["Hello", "Hello there,", "Hello there, Ada."]
    assert replier.finished == ["Hello there, Ada."] and replier.errors == []
    assert t.store.stored_roles == [["user", "assistant"]]
    stored = t.store.turns[0].messages
    assert stored[0].parts == [{"type": "text", "text": "My name is Ada."}]
    assert stored[1].parts == [{"type": "text", "text": "Hello there, Ada."}] and stored[1].model == MODEL
    assert t.budget.settled == [(t.budget.holds[0], [CallUsage(MODEL, Usage(57, 0, 6), 1)])]
    assert t.budget.released == [] and t.budget.open_holds == []


async def test_the_next_turn_sees_the_stored_turn_as_history() -> None:
    t = rig([Reply("Hello, Ada.", usage=Usage(1, 0, 1)), Reply("You are Ada.", usage=Usage(1, 0, 1))])

    await t.pipeline.handle(incoming("My name is Ada.", "e1"), RecordingReplier())
    await t.pipeline.handle(incoming("Who am I?", "e2"), RecordingReplier())

    sent = t.model.calls[1].messages
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert (sent[1]["content"], sent[2]["content"], sent[3]["content"]) == (
        "My name is Ada.",
        "Hello, Ada.",
        "Who am I?",
    )
    assert t.budget.plans[1].prompt_tokens > t.budget.plans[0].prompt_tokens  # history is paid for


async def test_a_redelivered_event_gets_no_second_reply() -> None:
    t = rig([Reply("Hi!", usage=Usage(1, 0, 1)), Reply("Hi again!", usage=Usage(1, 0, 1))])
    first, again = RecordingReplier(), RecordingReplier()

    assert await t.pipeline.handle(incoming("hello", "slack:C1:1.0001"), first) is TurnOutcome.ANSWERED
    assert await t.pipeline.handle(incoming("hello", "slack:C1:1.0001"), again) is TurnOutcome.DUPLICATE

    assert first.finished == ["Hi!"]
    assert again.events == []
    assert len(t.model.calls) == 1 and len(t.store.turns) == 1 and len(t.budget.holds) == 1


async def test_a_guard_refusal_shows_the_error_calls_no_model_and_releases_nothing() -> None:
    refusal = RateLimited("Slow down a little.")
    guard = Refuse(refusal)
    t = rig([Reply("never")], guards=[guard])
    replier = RecordingReplier()

    assert await t.pipeline.handle(incoming("hello", "e1"), replier) is TurnOutcome.FAILED

    assert guard.seen == 1
    assert replier.errors == [refusal] and replier.finished == []
    assert t.model.calls == []
    assert t.budget.holds == [] and t.budget.released == [] and t.budget.settled == []
    assert t.store.turns == []
    assert [(f.message.event_id, f.user, f.error) for f in t.store.failures] == [("e1", None, refusal)]


async def test_a_budget_refusal_shows_why_and_calls_no_model() -> None:
    t = rig([Reply("never")], budget=FakeBudget(refuse=[MODEL]))
    replier = RecordingReplier()

    assert await t.pipeline.handle(incoming("hello", "e1"), replier) is TurnOutcome.FAILED

    assert len(replier.errors) == 1 and isinstance(replier.errors[0], QuotaExceeded)
    assert MODEL in replier.errors[0].user_message
    assert t.model.calls == [] and replier.finished == []
    assert t.budget.released == [] and t.budget.settled == []
    failure = t.store.failures[0]
    assert failure.conversation_id == 1 and failure.user is not None  # kept as a hidden failed turn


async def test_the_fallback_model_answers_when_the_budget_cannot_cover_the_primary() -> None:
    t = rig(
        [Reply("Cheaper answer.", usage=Usage(20, 0, 3))],
        budget=FakeBudget(refuse=[MODEL]),
        fallback=FALLBACK,
    )
    replier = RecordingReplier()

    assert await t.pipeline.handle(incoming("hello", "e1"), replier) is TurnOutcome.ANSWERED

    assert [call.model for call in t.model.calls] == [FALLBACK]
    assert [plan.model for plan in t.budget.plans] == [MODEL, FALLBACK]
    assert replier.finished == [
        f"Cheaper answer.\n\n_Answered with {FALLBACK}: the budget does not cover {MODEL} right now._"
    ]
    assert t.budget.settled == [(t.budget.holds[0], [CallUsage(FALLBACK, Usage(20, 0, 3), 1)])]
    assert t.store.turns[0].messages[1].model == FALLBACK
    assert t.store.turns[0].encoding == t.counter.encoding_for(FALLBACK)


async def test_the_cost_footer_goes_under_the_answer() -> None:
    def footer(usages: Sequence[CallUsage]) -> str:
        return f"{sum(u.usage.completion_tokens for u in usages)} tokens"

    t = rig([Reply("Sure.", usage=Usage(9, 0, 2))], footer=footer)
    replier = RecordingReplier()

    await t.pipeline.handle(incoming("hello", "e1"), replier)

    assert replier.finished == [f"Sure.\n\n_{MODEL} · 2 tokens_"]  # which model answered, and its cost


async def test_the_router_sends_short_turns_to_the_cheap_model_and_code_to_the_strong_one() -> None:
    def footer(usages: Sequence[CallUsage]) -> str:
        return f"{sum(u.usage.completion_tokens for u in usages)} tokens"

    router = ModelRouter("cheap-model", "strong-model")
    t = rig(
        [Reply("Hi.", usage=Usage(9, 0, 2)), Reply("Fixed.", usage=Usage(90, 0, 3))],
        router=router,
        footer=footer,
    )
    short, code = RecordingReplier(), RecordingReplier()
    code_question = "Why does this fail?\n```python\nprint(1/0)\n```"

    await t.pipeline.handle(incoming("hello", "e1"), short)
    await t.pipeline.handle(incoming(code_question, "e2"), code)

    assert [call.model for call in t.model.calls] == ["cheap-model", "strong-model"]
    assert short.finished == ["Hi.\n\n_cheap-model · 2 tokens_"]
    assert code.finished == ["Fixed.\n\n_strong-model · 3 tokens_"]


async def test_a_tool_round_feeds_results_back_and_the_answer_uses_them() -> None:
    call = ToolCall("call_1", "lookup", '{"q": "answer"}')
    tools = FakeTools({'{"q": "answer"}': "42"})
    t = rig(
        [
            Reply("", tool_calls=(call,), usage=Usage(100, 0, 10)),
            Reply("The answer is 42.", usage=Usage(130, 0, 6)),
        ],
        tools=tools,
    )
    replier = RecordingReplier()

    assert await t.pipeline.handle(incoming("What is the answer?", "e1"), replier) is TurnOutcome.ANSWERED

    assert tools.ran == [call]
    assert ("status", "Using lookup…") in replier.events
    second = t.model.calls[1].messages
    assert second[-2]["role"] == "assistant" and second[-2]["tool_calls"] == [call.wire()]
    assert second[-1] == {"role": "tool", "tool_call_id": "call_1", "content": "42"}
    assert replier.finished == ["The answer is 42."]
    assert t.store.stored_roles == [["user", "assistant", "tool", "assistant"]]
    usages = [CallUsage(MODEL, Usage(100, 0, 10), 1), CallUsage(MODEL, Usage(130, 0, 6), 1)]
    [(settled, settled_usages)] = t.budget.settled
    assert settled.reservation_id == t.budget.holds[0].reservation_id and settled_usages == usages
    # Held up front: the first call and one answer after it; before the second call (which may use tools
    # again) the hold grew to cover it and an answer after it, sized from the exact prompt so far.
    assert [plan.rounds for plan in t.budget.plans] == [2]
    [(completed, extension)] = t.budget.extensions
    assert (completed, extension.rounds) == (1, 2)
    assert extension.prompt_tokens > t.budget.plans[0].prompt_tokens
    assert settled.micros == 3000 > t.budget.holds[0].micros


async def test_the_last_round_offers_no_tools_and_answers_in_words() -> None:
    call = ToolCall("call_1", "lookup", "{}")
    tools = FakeTools({})
    t = rig(
        [
            Reply("", tool_calls=(call,), usage=Usage(1, 0, 1)),
            Reply("In words, then.", tool_calls=(ToolCall("call_2", "lookup", "{}"),), usage=Usage(1, 0, 1)),
        ],
        tools=tools,
        max_tool_rounds=1,
    )
    replier = RecordingReplier()

    assert await t.pipeline.handle(incoming("Look it up", "e1"), replier) is TurnOutcome.ANSWERED

    assert [c.tool_choice for c in t.model.calls] == [None, "none"]
    assert tools.ran == [call]  # the call of the last round is not run
    assert replier.finished == ["In words, then."]
    assert t.store.turns[0].messages[-1].tool_calls is None


async def test_an_empty_answer_is_shown_as_model_unavailable_and_charged() -> None:
    t = rig([Reply("  ", usage=Usage(12, 0, 1))])
    replier = RecordingReplier()

    assert await t.pipeline.handle(incoming("hello", "e1"), replier) is TurnOutcome.FAILED

    assert len(replier.errors) == 1 and isinstance(replier.errors[0], LLMUnavailable)
    assert "empty answer" in replier.errors[0].user_message
    assert replier.finished == [] and t.store.turns == []
    assert t.budget.settled == [(t.budget.holds[0], [CallUsage(MODEL, Usage(12, 0, 1), 1)])]
    assert t.budget.released == []


async def test_a_stop_by_output_moderation_is_charged_for_what_was_read_and_written() -> None:
    text = "A first paragraph.\n\nthen forbidden words follow"
    t = rig([Reply(text, usage=Usage(999, 0, 999))], output=WordFilter("forbidden"))
    replier = RecordingReplier()

    assert await t.pipeline.handle(incoming("tell me", "e1"), replier) is TurnOutcome.FAILED

    assert updates(replier) == ["A first paragraph.\n\n"]  # never past what was cleared
    assert len(replier.errors) == 1 and isinstance(replier.errors[0], ContentBlocked)
    assert replier.finished == [] and t.store.turns == []
    written = t.counter.count_text(MODEL, "A first paragraph.\n\nthen forbidden")
    prompt = t.budget.plans[0].prompt_tokens
    assert t.budget.settled == [(t.budget.holds[0], [CallUsage(MODEL, Usage(prompt, 0, written), 1)])]
    assert t.budget.released == []


async def test_a_failure_after_a_completed_call_is_charged() -> None:
    budget = FakeBudget()
    t = rig(
        [Reply("Fine.", usage=Usage(40, 0, 2))], budget=budget, store=FakeStore(budget, fail_persist=True)
    )
    replier = RecordingReplier()

    assert await t.pipeline.handle(incoming("hello", "e1"), replier) is TurnOutcome.FAILED

    assert [type(error) for error in replier.errors] == [BotError]
    assert t.store.charges == [(budget.holds[0], [CallUsage(MODEL, Usage(40, 0, 2), 1)])]
    assert budget.settled == t.store.charges and budget.released == []
    assert t.history.entries == {}  # nothing was stored, so the history did not grow


async def test_a_failure_before_any_call_releases_the_hold() -> None:
    down = LLMUnavailable("The AI provider is having problems right now.")
    t = rig([Reply(error=down)])
    replier = RecordingReplier()

    assert await t.pipeline.handle(incoming("hello", "e1"), replier) is TurnOutcome.FAILED

    assert replier.errors == [down] and replier.finished == []
    assert t.budget.released == t.budget.holds and len(t.budget.holds) == 1
    assert t.budget.settled == [] and t.store.charges == []
    assert t.budget.open_holds == []
    assert t.store.failures[0].user is not None


async def test_a_cancelled_turn_gives_the_hold_back() -> None:
    t = rig([Reply("Half an ans", error=asyncio.CancelledError(), error_after_chars=4)])
    replier = RecordingReplier()

    with pytest.raises(asyncio.CancelledError):
        await t.pipeline.handle(incoming("hello", "e1"), replier)

    assert t.budget.released == t.budget.holds and len(t.budget.holds) == 1
    assert t.budget.settled == [] and t.store.turns == []


async def test_a_turn_cancelled_at_shutdown_says_so_in_place_of_the_reply_and_gives_the_hold_back() -> None:
    t = rig([Reply("Half of an answer", hang=True, error_after_chars=7)])
    replier = RecordingReplier()
    task = asyncio.create_task(t.pipeline.handle(incoming("hello", "e1"), replier))
    await asyncio.wait_for(replier.streaming.wait(), ENDS_WITHIN)

    task.cancel()  # what shutdown does to a turn that did not finish in time
    with pytest.raises(asyncio.CancelledError):
        await task

    assert updates(replier)[-1] == "Half of" and replier.finished == []
    [error] = replier.errors
    assert isinstance(error, TurnInterrupted) and error.user_message == INTERRUPTED_MESSAGE
    assert t.budget.released == t.budget.holds and t.budget.open_holds == []
    assert t.store.turns == [] and [f.error for f in t.store.failures] == [error]  # kept hidden


async def test_a_turn_past_its_time_limit_keeps_what_streamed_under_a_cut_off_notice() -> None:
    t = rig([Reply("The first words and then nothing", hang=True, error_after_chars=15)], turn_timeout=0.2)
    replier = RecordingReplier()

    outcome = await asyncio.wait_for(t.pipeline.handle(incoming("hello", "e1"), replier), ENDS_WITHIN)

    assert outcome is TurnOutcome.FAILED
    assert updates(replier)[-1] == "The first words" and replier.finished == []
    [error] = replier.errors
    assert isinstance(error, TurnTimedOut)
    assert error.user_message == (
        "This answer took longer than the 0.2 s time limit and was cut off. Please try again."
    )
    assert t.budget.released == t.budget.holds and t.budget.open_holds == []
    assert t.store.turns == [] and [f.error for f in t.store.failures] == [error]


async def test_a_budget_that_covers_one_call_gets_an_answer_in_words_without_tools() -> None:
    tools = FakeTools({})
    t = rig(
        [Reply("Straight from memory: 42.", usage=Usage(30, 0, 6))],
        budget=FakeBudget(max_calls=1),
        tools=tools,
    )
    replier = RecordingReplier()

    assert await t.pipeline.handle(incoming("What is the answer?", "e1"), replier) is TurnOutcome.ANSWERED

    [call] = t.model.calls
    assert call.tools == [] and call.tool_choice is None  # no tool is offered: no round it cannot pay for
    assert replier.finished == [f"Straight from memory: 42.\n\n_{NO_TOOLS_NOTE}_"]
    with_tools, without = t.budget.plans
    assert (with_tools.rounds, without.rounds) == (2, 1)  # a tool round and an answer were refused first
    assert without.prompt_tokens < with_tools.prompt_tokens  # the tool definitions are not sent, nor held
    assert [hold for hold, _ in t.budget.settled] == t.budget.holds


async def test_a_refused_extension_makes_the_next_call_answer_now_within_the_hold() -> None:
    call = ToolCall("call_1", "lookup", "{}")
    t = rig(
        [
            Reply("", tool_calls=(call,), usage=Usage(100, 0, 10)),
            Reply("With what I found: 42.", usage=Usage(130, 0, 6)),
        ],
        budget=FakeBudget(refuse_extensions=True),
        tools=FakeTools({"{}": "42"}),
        max_tool_rounds=3,
    )
    replier = RecordingReplier()

    assert await t.pipeline.handle(incoming("Look it up", "e1"), replier) is TurnOutcome.ANSWERED

    assert [c.tool_choice for c in t.model.calls] == [None, "none"]  # could have looped three more times
    assert replier.finished == ["With what I found: 42."]
    assert [(done, plan.rounds) for done, plan in t.budget.extensions] == [(1, 2), (1, 1)]
    [(settled, _)] = t.budget.settled
    assert settled == t.budget.holds[0]  # the answer came out of what was held from the start


async def test_a_stopped_turn_keeps_what_streamed_and_charges_it() -> None:
    t = rig([Reply("Once upon a time there was", hang=True, error_after_chars=16)])
    replier = RecordingReplier()
    turn = asyncio.create_task(t.pipeline.handle(incoming("a story", "e1"), replier))
    await asyncio.wait_for(replier.streaming.wait(), 5)
    assert replier.answer_id is not None
    assert t.pipeline.running.stop(replier.answer_id, "Ada")

    assert await asyncio.wait_for(turn, 5) is TurnOutcome.ANSWERED
    assert replier.finished == ["Once upon a time\n\n_Stopped by Ada._"]
    [stored] = t.store.turns
    assert [m.parts for m in stored.messages if m.role == "assistant"] == [
        [{"type": "text", "text": "Once upon a time"}]
    ]
    [charged] = t.budget.settled
    [call] = charged[1]
    assert call.usage.completion_tokens == t.counter.count_text(MODEL, "Once upon a time")
    assert not t.pipeline.running.stop(replier.answer_id, "Ada")  # no longer running


async def test_a_turn_stopped_before_any_text_keeps_a_marker_in_history() -> None:
    class Started(RecordingReplier):
        started = asyncio.Event()

        async def start(self) -> None:
            await super().start()
            self.started.set()

    t = rig([Reply("never shown", hang=True, error_after_chars=0)])
    replier = Started()
    turn = asyncio.create_task(t.pipeline.handle(incoming("a story", "e1"), replier))
    await asyncio.wait_for(replier.started.wait(), 5)
    assert replier.answer_id is not None and t.pipeline.running.stop(replier.answer_id, "Ada")

    assert await asyncio.wait_for(turn, 5) is TurnOutcome.ANSWERED
    assert replier.finished == ["\n\n_Stopped by Ada._"]
    [stored] = t.store.turns
    assert stored.messages[-1].parts == [{"type": "text", "text": "(stopped before answering)"}]
