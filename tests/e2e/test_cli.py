"""The `threadwise` command as an operator runs it: a real subprocess, talking HTTP to the OpenAI fake."""

from __future__ import annotations

from pathlib import Path

from core.db import migrate
from tests.e2e.conftest import openai_env
from tests.fakes.openai_api import FakeOpenAI, Fault, Reply


async def test_piped_chat_remembers_the_conversation_across_runs(run_cli, fake_openai: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    fake_openai.script(Reply(text="Hello Ada!"), Reply(text="Your name is Ada."), Reply(text="Still Ada."))
    first = await run_cli(
        "chat",
        "--conversation",
        "t1",
        stdin="My name is Ada.\nWhat is my name?\n",
        env=openai_env(fake_openai),
    )
    assert first.code == 0, first.err
    assert first.out == "Hello Ada!\nYour name is Ada.\n"
    second_request = fake_openai.chat_requests()[1]["messages"]
    assert [m["content"] for m in second_request[1:]] == ["My name is Ada.", "Hello Ada!", "What is my name?"]

    later = await run_cli("chat", "--conversation", "t1", stdin="Who am I?\n", env=openai_env(fake_openai))
    assert later.code == 0 and later.out == "Still Ada.\n"
    history = [m["content"] for m in fake_openai.chat_requests()[2]["messages"][1:]]
    assert history == ["My name is Ada.", "Hello Ada!", "What is my name?", "Your name is Ada.", "Who am I?"]

    other = await run_cli(
        "chat", "--conversation", "t2", "--model", "gpt-4.1-mini", stdin="hi\n", env=openai_env(fake_openai)
    )
    assert other.code == 0
    last = fake_openai.chat_requests()[3]
    assert last["model"] == "gpt-4.1-mini" and len(last["messages"]) == 2


async def test_chat_works_offline_without_tiktoken_tables(
    run_cli, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    empty = tmp_path / "no-tables"
    empty.mkdir()
    result = await run_cli(
        "chat", stdin="one\ntwo\n", env={**openai_env(fake_openai), "TIKTOKEN_CACHE_DIR": str(empty)}
    )
    assert result.code == 0, result.err
    assert result.out == "echo: one\necho: two\n"
    warnings = [line for line in result.err.splitlines() if "tiktoken encoding" in line]
    assert len(warnings) == 1 and "TIKTOKEN_CACHE_DIR" in warnings[0]


async def test_chat_reports_provider_errors_and_exits_1(run_cli, fake_openai: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    fake_openai.script(Fault(500), Fault(500), Fault(500), Reply(text="recovered"))
    result = await run_cli(
        "chat", stdin="first\nsecond\n", env={**openai_env(fake_openai), "THREADWISE_OPENAI_MAX_RETRIES": "2"}
    )
    assert result.code == 1
    assert "error: The AI provider is having problems right now" in result.err
    assert "Traceback" not in result.err
    assert result.out == "recovered\n"


async def test_chat_without_an_api_key_says_what_to_set(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = await run_cli("chat", stdin="hi\n")
    assert result.code == 2 and "OPENAI_API_KEY" in result.err and "Traceback" not in result.err


async def test_invalid_settings_name_the_variable(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = await run_cli("chat", env={"OPENAI_API_KEY": "k", "THREADWISE_MAX_OUTPUT_TOKENS": "lots"})
    assert result.code == 2 and "THREADWISE_MAX_OUTPUT_TOKENS" in result.err


async def test_serve_without_a_platform_says_so_and_exits_2(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = await run_cli("serve")
    assert result.code == 2 and "no chat platform is configured" in result.err


async def test_migrate_up_and_down(run_cli) -> None:  # type: ignore[no-untyped-def]
    head = migrate.head_revision()  # the newest script (0012 when this was written)
    up = await run_cli("migrate")
    assert up.code == 0 and f"database at revision {head} (newest: {head})" in up.out
    back = await run_cli("migrate", "--downgrade", "0001")
    assert back.code == 0 and f"database at revision 0001 (newest: {head})" in back.out
    down = await run_cli("migrate", "--downgrade", "base")
    assert down.code == 0 and "database at revision base" in down.out
