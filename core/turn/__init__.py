"""One turn of a conversation (DESIGN.md §3), one module per thing it owns:

    service.py       ConversationService, what adapters and commands use: handle, screen, exists,
                     conversation_id, model_of, set_model, reset (a facade over the two below)
    pipeline.py      the turn, step by step: 2. claim, 3. order, 4. guards, 5.-6. context and reservation,
                     7. model call and tool loop, 8. reply, persist + settle; a failure (or a cancelled
                     turn) charged or released, shown in place of the placeholder
    conversations.py the conversation registry: id and model by key (cached), /ai model, /ai reset
    ordering.py      3. per-conversation order: one FIFO lock per conversation
    user_message.py  the new message as the model reads it (text, inlined files, images)
    context.py       5. system prompt (+ the channel's persona) + trimmed history + new message, and the
                     budget's CallPlan
    routing.py       THREADWISE_ROUTER: the cheap or the strong model for a turn, by a documented rule
    history.py       5. stored messages -> wire messages, exact trimming, the window cache
    reservation.py   6. the first call held (and an answer after a tool round); no tools when only the first
                     call fits; the fallback model when nothing fits; HeldBudget extends the hold
    tool_loop.py     7.-8. model rounds streamed through output moderation (ReplyStream), tools fed back,
                     the hold extended before each further round (or the model answers now)
    deadline.py      4.-8. the whole-turn time limit (TurnTimedOut)
    fitting.py       7. tool results cut to the room the reservation planned for a round
    store.py         2./8. the SQL TurnStore: event claim, persist + settle in one transaction, failures
    config.py        TurnConfig

The pipeline sees the world only through the ports in core/domain/ports.py; tests/unit/test_turn_pipeline.py
runs it against in-memory fakes of them.
"""
