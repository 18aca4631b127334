"""The request that writes a conversation's summary (core/turn/summary.py): incremental, and bounded in the
text it reads whatever the thread holds."""

from __future__ import annotations

from core.llm.tokens import TokenCounter
from core.turn.summary import SUMMARY_SYSTEM, DroppedMessage, StoredSummary, summary_request

MODEL = "gpt-4o-mini"


def test_the_request_reads_the_summary_so_far_and_the_dropped_turns() -> None:
    counter = TokenCounter()
    previous = StoredSummary("Alice prefers tea.", 3, 12, counter.encoding_for(MODEL))
    dropped = [DroppedMessage(4, "user", "My dog is Rex."), DroppedMessage(5, "assistant", "Noted.")]
    request = summary_request(counter, MODEL, previous, dropped, 1000)
    assert request is not None
    messages, through = request
    assert through == 5
    assert messages[0] == {"role": "system", "content": SUMMARY_SYSTEM}
    assert messages[1]["content"] == (
        "The summary so far:\nAlice prefers tea.\n\nNew messages to add to it:\n"
        "User: My dog is Rex.\nAssistant: Noted."
    )


def test_the_text_read_is_bounded_and_the_rest_waits_for_the_next_summary() -> None:
    counter = TokenCounter()
    dropped = [DroppedMessage(i, "user", f"fact number {i} " * 40) for i in range(1, 50)]
    request = summary_request(counter, MODEL, None, dropped, 300)
    assert request is not None
    messages, through = request
    assert 1 <= through < 49  # what did not fit is summarised by a later call
    assert counter.count_text(MODEL, messages[1]["content"]) <= 300 + 20
    huge = [DroppedMessage(7, "user", "word " * 100_000), DroppedMessage(8, "assistant", "ok")]
    request = summary_request(counter, MODEL, None, huge, 300)
    assert request is not None
    messages, through = request
    assert through == 7 and messages[1]["content"].endswith("[…]")  # one huge message: its beginning
    assert counter.count_text(MODEL, messages[1]["content"]) <= 300 + 20
    assert summary_request(counter, MODEL, None, [], 300) is None
