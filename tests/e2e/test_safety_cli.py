"""Moderation, redaction, erasure and retention from outside: `threadwise chat`, then `threadwise admin`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import openai_env
from tests.fakes.openai_api import FakeOpenAI


async def test_moderation_log_forget_and_purge_from_the_shell(run_cli, fake_openai: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    fake_openai.moderation_flags = {"idiot": {"harassment": 0.55}}
    env = openai_env(fake_openai)
    chat = await run_cli(
        "chat", "--conversation", "c1", stdin="mail me at ada@example.com\nyou idiot\n", env=env
    )
    assert chat.code == 0, chat.err
    assert "ada@example.com" not in str([request.json for request in fake_openai.requests])

    log = await run_cli("admin", "moderation", env=env)
    assert log.code == 0, log.err
    lines = log.out.splitlines()
    assert any(
        "console:local" in line and "input flag harassment (harassment 0.55)" in line for line in lines
    )
    assert any("input redact" in line and "redacted email" in line for line in lines)
    blocked = await run_cli("admin", "moderation", "--action", "block", env=env)
    assert blocked.out.strip() == "no moderation events match"

    refused = await run_cli("admin", "forget", "console:local", env=env)  # stdin is no terminal
    assert refused.code == 1 and "nothing erased" in refused.out
    erased = await run_cli("admin", "forget", "console:local", "--yes", env=env)
    assert erased.code == 0, erased.err
    assert "erased 4 messages in 1 conversations" in erased.out
    again = await run_cli("admin", "forget", "console:local", "--yes", env=env)
    assert again.out.strip() == "nothing is stored for console:local"

    purged = await run_cli("admin", "purge", "--days", "30", env=env)
    assert purged.code == 0 and "older than 30 days: 0 messages" in purged.out
    negative = await run_cli("admin", "purge", "--days", "-5", env=env)
    assert negative.code == 2 and "must be at least 1" in negative.err
    unset = await run_cli("admin", "purge", env=env)
    assert unset.code == 2 and "THREADWISE_RETENTION_DAYS" in unset.err


async def test_tools_of_a_channel_from_the_shell(run_cli, fake_openai: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    env = openai_env(fake_openai)
    shown = await run_cli("admin", "tools", "show", env=env)
    assert shown.code == 0 and "calculator *" in shown.out
    assert "also, when serving: generate_image" in shown.out
    chosen = await run_cli(
        "admin", "tools", "set", "--channel", "slack:T1:C1", "--tools", "calculator,files__read", env=env
    )
    assert chosen.code == 0, chosen.err
    assert "slack:T1:C1 now offers: calculator, files__read." in chosen.out
    assert "files__read: not a built-in tool" in chosen.out
    listed = await run_cli("admin", "tools", "show", "--channel", "slack:T1:C1", env=env)
    assert "slack:T1:C1: calculator, files__read" in listed.out
    cleared = await run_cli("admin", "tools", "clear", "--channel", "slack:T1:C1", env=env)
    assert cleared.out.strip() == "slack:T1:C1 uses the default tools again."
    bad = await run_cli("admin", "tools", "set", "--channel", "slack:C1", "--tools", "calculator", env=env)
    assert bad.code == 2 and "platform:workspace_id:channel_id" in bad.err


async def test_tools_needing_approval_in_a_channel_from_the_shell(run_cli, fake_openai: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    env = {**openai_env(fake_openai), "THREADWISE_APPROVAL_TOOLS": "fetch_url"}
    gated = await run_cli(
        "admin",
        "tools",
        "approval",
        "--channel",
        "slack:T1:C1",
        "--patterns",
        "github__*,calculator",
        env=env,
    )
    assert gated.code == 0, gated.err
    assert "slack:T1:C1" in gated.out and "github__*, calculator" in gated.out and "fetch_url" in gated.out
    listed = await run_cli("admin", "tools", "show", "--channel", "slack:T1:C1", env=env)
    assert "Approval needed everywhere for: fetch_url" in listed.out
    assert "and in slack:T1:C1 also for: github__*, calculator" in listed.out
    bad = await run_cli(
        "admin", "tools", "approval", "--channel", "slack:T1:C1", "--patterns", "rm -rf", env=env
    )
    assert bad.code != 0 and "Not a tool name pattern" in bad.out + bad.err
    cleared = await run_cli(
        "admin", "tools", "approval", "--channel", "slack:T1:C1", "--patterns", "none", env=env
    )
    assert cleared.code == 0 and "only where the server does" in cleared.out
    listed = await run_cli("admin", "tools", "show", "--channel", "slack:T1:C1", env=env)
    assert "also for" not in listed.out


async def test_admin_export_writes_everything_stored_about_a_user(
    run_cli, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    fake_openai.moderation_flags = {"idiot": {"harassment": 0.55}}
    env = openai_env(fake_openai)
    chat = await run_cli("chat", "--conversation", "c1", stdin="hello there\nyou idiot\n", env=env)
    assert chat.code == 0, chat.err

    written = await run_cli("admin", "export", "console:local", "--out", "me.json", env=env)
    assert written.code == 0, written.err
    assert "4 messages" in written.out and "2 usage" in written.out and "written to me.json" in written.out
    exported = json.loads((tmp_path / "me.json").read_text())
    assert exported["user"] == "console:local"
    assert [m["role"] for m in exported["messages"]] == ["user", "assistant", "user", "assistant"]
    assert exported["messages"][0]["content"] == [{"type": "text", "text": "hello there"}]
    assert len(exported["usage"]) == 2 and all(u["user_id"] == "local" for u in exported["usage"])
    assert any(e["action"] == "flag" for e in exported["moderation_events"])
    assert [c["thread_id"] for c in exported["conversations"]] == ["c1"]
    assert any(a["action"] == "export" and a["target"] == "console:local" for a in exported["admin_actions"])

    printed = await run_cli("admin", "export", "console:local", env=env)
    assert json.loads(printed.out)["messages"] == exported["messages"]
    nobody = await run_cli("admin", "export", "console:nobody", env=env)
    assert json.loads(nobody.out)["messages"] == []
    bad = await run_cli("admin", "export", "local", env=env)
    assert bad.code == 2 and "platform:user_id" in bad.err
    unwritable = await run_cli("admin", "export", "console:local", "--out", "missing/dir/me.json", env=env)
    assert unwritable.code == 2 and "cannot write missing/dir/me.json" in unwritable.err


async def test_persona_of_a_channel_from_the_shell(run_cli, fake_openai: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    env = {**openai_env(fake_openai), "THREADWISE_MODELS": "gpt-4o-mini,gpt-4.1-mini"}
    chosen = await run_cli(
        "admin", "prompt", "set", "--channel", "console:local:console", "Answer in French.",
        "--model", "gpt-4.1-mini", env=env,
    )  # fmt: skip
    assert chosen.code == 0, chosen.err
    shown = await run_cli("admin", "prompt", "show", "--channel", "console:local:console", env=env)
    assert "Answer in French." in shown.out and "model: gpt-4.1-mini" in shown.out
    chat = await run_cli("chat", "--conversation", "c1", stdin="bonjour\n", env=env)
    assert chat.code == 0, chat.err
    [request] = fake_openai.chat_requests()
    assert request["model"] == "gpt-4.1-mini"
    assert request["messages"][0]["content"].endswith("\n\nIn this channel: Answer in French.")
    bad = await run_cli("admin", "prompt", "set", "--workspace", "slack", "x", env=env)
    assert bad.code == 2 and "platform:workspace" in bad.err
    unknown = await run_cli(
        "admin", "prompt", "set", "--workspace", "slack:T1", "x", "--model", "gpt-9", env=env
    )
    assert unknown.code == 2 and "Unknown model" in unknown.err
    cleared = await run_cli("admin", "prompt", "clear", "--channel", "console:local:console", env=env)
    assert cleared.out.strip() == "console:local:console: persona removed"
