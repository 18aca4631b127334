"""What an operator waits for at start-up: each `threadwise` command loads only the SDKs it uses.

`--help`, `migrate` and `admin …` load no model, chat, MCP or chart library (each of those takes seconds to
import); `serve` with only Slack configured loads neither discord.py nor the MCP SDK, and only the default
model's token tables (loaded before ready, so building them never stalls a turn); restarted on a database
at head (HTTP mode) it loads neither Alembic nor Slack's Socket Mode, even once /readyz was asked; a report
loads matplotlib only when a chart is asked for. Each command runs in a fresh interpreter (a subprocess)
that reports which of those packages are in ``sys.modules`` when it is done, or, for `serve`, once /healthz
answers 200.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import textwrap
from pathlib import Path

from tests.e2e.conftest import openai_env
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.slack_api import BOT_TOKEN, SIGNING_SECRET, FakeSlack

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("openai", "mcp", "discord", "slack_bolt", "slack_sdk", "matplotlib")
# What a restarted Slack HTTP `serve` (database at head) has no use for: Alembic (with Mako and Pygments) and
# Socket Mode.
UNUSED = ("alembic", "mako", "pygments", "slack_sdk.socket_mode", "slack_bolt.adapter.socket_mode")

PROBE = textwrap.dedent(
    """\
    import json, os, signal, sys, threading, time, urllib.request

    HEAVY = {heavy!r}
    UNUSED = {unused!r}

    def loaded(names=HEAVY):
        return sorted(name for name in names if name in sys.modules)

    def when_ready(url):
        while True:
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.05)
        from core.llm.tokens import load_encoding
        tables = load_encoding.cache_info().currsize  # the default model's tables, loaded before ready
        with urllib.request.urlopen(url.replace("healthz", "readyz"), timeout=5) as response:
            readyz = response.status  # every part checked, the schema's revision too
        print(
            json.dumps({{"ready": loaded(), "tables": tables, "readyz": readyz, "unused": loaded(UNUSED)}}),
            flush=True,
        )
        os.kill(os.getpid(), signal.SIGTERM)

    if sys.argv[1] == "serve":
        url = f"http://127.0.0.1:{{os.environ['PORT']}}/healthz"
        threading.Thread(target=when_ready, args=(url,), daemon=True).start()
    from bots.__main__ import main
    try:
        code = main(sys.argv[1:])
    except SystemExit as exit:
        code = exit.code
    print(json.dumps({{"code": code, "loaded": loaded(), "alembic": "alembic" in sys.modules}}), flush=True)
    """
).format(heavy=HEAVY, unused=UNUSED)


async def probe(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> list[dict[str, object]]:
    """Runs ``threadwise <args>`` in a fresh interpreter; the JSON lines the probe printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PROBE,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
        env={
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),
            "TIKTOKEN_CACHE_DIR": os.environ["TIKTOKEN_CACHE_DIR"],
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'threadwise.db'}",
            "PYTHONPATH": str(REPO),
            **(env or {}),
        },
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    assert lines, err.decode()
    return lines


async def test_help_migrate_and_admin_load_no_sdk(tmp_path: Path) -> None:
    [shown] = await probe(tmp_path, "--help")
    assert shown == {"code": 0, "loaded": [], "alembic": False}
    [migrated] = await probe(tmp_path, "migrate")
    assert migrated == {"code": 0, "loaded": [], "alembic": True}
    # The database is at head now: the start-up check is one query, without loading Alembic either.
    for command in (("admin", "bans"), ("admin", "quota", "show"), ("admin", "tools", "show")):
        [ran] = await probe(tmp_path, *command)
        assert ran == {"code": 0, "loaded": [], "alembic": False}, command


async def test_a_report_loads_matplotlib_only_for_a_chart(tmp_path: Path) -> None:
    [table] = await probe(tmp_path, "admin", "report")
    assert table["loaded"] == [] and table["code"] == 0
    [charted] = await probe(tmp_path, "admin", "report", "--chart", str(tmp_path / "spend.png"))
    assert charted["loaded"] == ["matplotlib"] and charted["code"] == 0
    assert (tmp_path / "spend.png").read_bytes().startswith(b"\x89PNG")


async def test_serve_with_slack_only_loads_no_discord_and_no_mcp(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
    async with FakeSlack() as slack:
        env = {
            "PORT": str(port),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.api_url,
            **openai_env(fake_openai),
        }
        ready, stopped = await probe(tmp_path, "serve", env=env)
        restarted, _ = await probe(tmp_path, "serve", env=env)  # the database at head now
    sdks = ["openai", "slack_bolt", "slack_sdk"]
    assert ready == {"ready": sdks, "tables": 1, "readyz": 200, "unused": ["alembic", "mako", "pygments"]}
    assert stopped["loaded"] == sdks and stopped["code"] == 0
    # A restart: the schema found at head by one query each (start and /readyz), no Alembic, no Socket Mode.
    assert restarted == {"ready": sdks, "tables": 1, "readyz": 200, "unused": []}
