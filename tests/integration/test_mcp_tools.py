"""MCP servers written with the official ``mcp`` package (tests/fakes/mcp_server.py), run for real over stdio
and streamable HTTP, connected through core.tools.mcp_servers."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.domain.types import ChatUser, ConversationKey, IncomingMessage
from core.tools.mcp_servers import McpServerConfig, McpServers, parse_mcp_servers, parse_mcp_servers_json
from core.tools.registry import Tool, ToolContext, ToolError, ToolOutput, ToolRegistry
from tests.fakes.mcp_server import LONG_DOTTED_NAME, PNG_1X1

ROOT = Path(__file__).resolve().parents[2]
FAKE_ENV = {"PYTHONPATH": str(ROOT)}
LOGGER = "core.tools.mcp_servers"
CTX = ToolContext(
    message=IncomingMessage(
        key=ConversationKey("console", "local", "console", "mcp-test"),
        user=ChatUser("console", "tester", "Tester"),
        text="use the tools",
        event_id="mcp-test-1",
        received_at=datetime.now(UTC),
    ),
    is_admin=False,
)


def fake_stdio(name: str = "fake", *, timeout: float = 30.0) -> McpServerConfig:
    return McpServerConfig(
        name=name,
        command=sys.executable,
        args=("-m", "tests.fakes.mcp_server"),
        env=FAKE_ENV,
        timeout=timeout,
    )


async def text_of(tool: Tool, args: object) -> str:
    output = await tool.run(args, CTX)
    assert isinstance(output, ToolOutput)
    return output.text


def by_name(servers: McpServers) -> dict[str, Tool]:
    return {tool.name: tool for tool in servers.tools()}


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" in status.read_text()


async def test_stdio_server_is_discovered_and_called(capfd: pytest.CaptureFixture[str]) -> None:
    async with McpServers([fake_stdio()]) as servers:
        tools = by_name(servers)
        long_name = ("fake__" + LONG_DOTTED_NAME.replace(".", "_"))[:64]
        assert sorted(tools) == sorted(
            ["fake__add", "fake__fail", "fake__picture", "fake__pid", "fake__shout", "fake__slow", long_name]
        )
        add = tools["fake__add"]
        assert add.description == "Add two integers."
        assert add.arguments is None and add.source == "mcp:fake" and add.timeout == 30.0
        assert add.schema is not None
        assert add.schema["type"] == "object" and add.schema["required"] == ["a", "b"]
        assert add.schema["properties"]["a"]["type"] == "integer"
        assert add.definition()["function"]["parameters"] == dict(add.schema)
        registry = ToolRegistry()
        registry.extend(servers.tools())  # every name passes the registry's ^[a-zA-Z0-9_-]{1,64}$
        assert servers.status() == {"fake": "up (7 tools)"}

        assert await text_of(add, {"a": 2, "b": 3}) == "5"
        # The exposed name is cleaned and cut; the server is called with its own name.
        assert len(long_name) == 64
        assert await text_of(tools[long_name], {"query": "docs"}) == "found docs"
        # Calls from other tasks, concurrently (the session is owned by its own task).
        outputs = await asyncio.gather(
            *(asyncio.create_task(text_of(add, {"a": i, "b": 1})) for i in range(5)),
            text_of(tools["fake__shout"], {"text": "hello"}),
            text_of(tools["fake__slow"], {"seconds": 0.05}),
        )
        assert outputs == ["1", "2", "3", "4", "5", "HELLO!", "slept 0.05s"]
        picture = await tools["fake__picture"].run({}, CTX)
        assert isinstance(picture, ToolOutput)
        assert picture.text.splitlines() == [
            "a transparent pixel",
            f"[image image/png, {len(PNG_1X1)} bytes, not shown]",
        ]
        assert picture.attachments == ()
    assert servers.status() == {"fake": "down: shut down"}
    assert "Traceback" not in capfd.readouterr().err


async def test_is_error_results_become_tool_errors() -> None:
    async with McpServers([fake_stdio()]) as servers:
        tools = by_name(servers)
        with pytest.raises(ToolError, match="failed on purpose"):
            await tools["fake__fail"].run({}, CTX)
        with pytest.raises(ToolError, match="validation error"):
            await tools["fake__add"].run({"a": "two"}, CTX)
        with pytest.raises(ToolError, match="JSON object"):
            await tools["fake__add"].run([1, 2], CTX)
        # The server is still fine after its tools failed.
        assert await text_of(tools["fake__add"], {"a": 1, "b": 1}) == "2"
        assert servers.status() == {"fake": "up (7 tools)"}


async def test_tool_call_times_out_and_server_stays_up() -> None:
    async with McpServers([fake_stdio(timeout=0.5)]) as servers:
        tools = by_name(servers)
        assert tools["fake__slow"].timeout == 0.5
        started = time.monotonic()
        with pytest.raises(ToolError, match=r"fake__slow timed out after 0\.5s"):
            await tools["fake__slow"].run({"seconds": 10}, CTX)
        assert time.monotonic() - started < 2.0
        assert await text_of(tools["fake__add"], {"a": 20, "b": 22}) == "42"
        # The tool loop's own timeout cancels the call from outside: the session survives that too.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(tools["fake__slow"].run({"seconds": 10}, CTX), 0.2)
        assert await text_of(tools["fake__add"], {"a": 1, "b": 2}) == "3"
        assert servers.status() == {"fake": "up (7 tools)"}


async def test_missing_command_is_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    ghost = McpServerConfig(name="ghost", command="/nonexistent/threadwise-mcp-server")
    async with McpServers([ghost, fake_stdio()]) as servers:
        assert {tool.source for tool in servers.tools()} == {"mcp:fake"}
        assert await text_of(by_name(servers)["fake__shout"], {"text": "still here"}) == "STILL HERE!"
        status = servers.status()
        assert status["fake"] == "up (7 tools)"
        assert status["ghost"].startswith("down: FileNotFoundError")
    [warning] = warnings_of(caplog)
    assert warning.startswith("MCP server ghost skipped: FileNotFoundError")


async def test_silent_server_is_skipped_after_the_connect_timeout(caplog: pytest.LogCaptureFixture) -> None:
    # Reads its stdin and never answers; exits when stdin closes.
    mute = McpServerConfig(name="mute", command=sys.executable, args=("-c", "import sys; sys.stdin.read()"))
    started = time.monotonic()
    async with McpServers([mute], connect_timeout=1.0) as servers:
        assert time.monotonic() - started < 5.0
        assert servers.tools() == []
        assert servers.status() == {"mute": "down: no answer within 1s"}
    assert warnings_of(caplog) == ["MCP server mute skipped: no answer within 1s"]


async def test_killed_server_fails_fast_and_is_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    async with McpServers([fake_stdio()]) as servers:
        tools = by_name(servers)
        pid = int(await text_of(tools["fake__pid"], {}))
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.2)
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(ToolError, match=r"^the fake tool server is unavailable$"):
                await tools["fake__add"].run({"a": 1, "b": 2}, CTX)
            assert time.monotonic() - started < 0.5
        assert servers.status()["fake"].startswith("down: the connection closed")
        assert servers.tools() == []
    assert warnings_of(caplog) == [
        "MCP server fake is down, its tools now fail: "
        "the connection closed (the server exited or dropped the session)"
    ]


async def test_clean_shutdown(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    servers = McpServers([fake_stdio("one"), fake_stdio("two")])
    async with servers:
        tools = by_name(servers)
        pids = [int(await text_of(tools[f"{name}__pid"], {})) for name in ("one", "two")]
        in_flight = asyncio.create_task(text_of(tools["one__slow"], {"seconds": 30}))
        await asyncio.sleep(0.1)
        started = time.monotonic()
    assert time.monotonic() - started < 3.0
    assert all(process_gone(pid) for pid in pids)
    # A call caught by the shutdown fails as a tool error, later ones fail fast, nothing is logged as a fault.
    with pytest.raises(ToolError, match="unavailable"):
        await in_flight
    with pytest.raises(ToolError, match=r"^the two tool server is unavailable$"):
        await tools["two__add"].run({"a": 1, "b": 2}, CTX)
    assert servers.status() == {"one": "down: shut down", "two": "down: shut down"}
    assert warnings_of(caplog) == []
    assert "Traceback" not in capfd.readouterr().err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def http_server() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The fake MCP server over streamable HTTP on loopback, requiring a bearer token."""
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.mcp_server",
            "--http",
            "--port",
            str(port),
            "--token",
            "s3cret-token",
        ],
        env={**os.environ, **FAKE_ENV},
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the fake MCP HTTP server did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp", process
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_http_server_with_bearer_token(
    http_server: tuple[str, subprocess.Popen[bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url, process = http_server
    good = McpServerConfig(name="search", url=url, token="s3cret-token", timeout=5)
    bad = McpServerConfig(name="locked", url=url, token="wrong-token")
    async with McpServers([good, bad]) as servers:
        tools = by_name(servers)
        assert "search__add" in tools and not any(name.startswith("locked__") for name in tools)
        assert await text_of(tools["search__add"], {"a": 40, "b": 2}) == "42"
        with pytest.raises(ToolError, match="failed on purpose"):
            await tools["search__fail"].run({}, CTX)
        assert servers.status()["search"] == "up (7 tools)"
        assert servers.status()["locked"].startswith("down: ")
        # The server goes away: the next call fails as unavailable, fast, and later ones fail fast too.
        process.terminate()
        process.wait(timeout=10)
        for _ in range(2):
            with pytest.raises(ToolError, match=r"^the search tool server is unavailable$"):
                await asyncio.wait_for(tools["search__add"].run({"a": 1, "b": 1}, CTX), 5)
        assert servers.status()["search"].startswith("down: ")
    assert [w for w in warnings_of(caplog) if w.startswith("MCP server locked skipped")]
    assert "s3cret-token" not in caplog.text and "wrong-token" not in caplog.text


def test_parse_mcp_servers() -> None:
    configs = parse_mcp_servers(
        {
            "files": {"command": "python", "args": ["-m", "srv"], "env": {"ROOT": "/data"}},
            "search": {"url": "https://search.example/mcp", "token": "tok-123", "timeout": 10},
        }
    )
    assert configs == [
        McpServerConfig(name="files", command="python", args=("-m", "srv"), env={"ROOT": "/data"}),
        McpServerConfig(name="search", url="https://search.example/mcp", token="tok-123", timeout=10.0),
    ]
    assert "tok-123" not in repr(configs) and "/data" not in repr(configs)
    # The common {"mcpServers": {...}} wrapper and "type" keys are accepted.
    wrapped = parse_mcp_servers_json(
        '{"mcpServers": {"x": {"type": "streamable-http", "url": "http://h/mcp"}}}'
    )
    assert wrapped == [McpServerConfig(name="x", url="http://h/mcp")]
    assert parse_mcp_servers_json("  ") == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"bad name": {"command": "x"}}, "'bad name'"),
        ({"both": {"command": "x", "url": "http://h"}}, "'both': give exactly one of"),
        ({"neither": {"args": []}}, "'neither': give exactly one of"),
        ({"args": {"command": "x", "args": "-m srv"}}, "'args': 'args' must be a list"),
        ({"env": {"command": "x", "env": {"A": 1}}}, "'env': 'env' must be an object"),
        ({"ftp": {"url": "ftp://h/mcp"}}, "'ftp': 'url' must be an http"),
        ({"tok": {"command": "x", "token": "t-456"}}, "'tok': 'token' is only for 'url' servers"),
        ({"slow": {"command": "x", "timeout": 0}}, "'slow': 'timeout' must be a positive"),
        ({"typo": {"command": "x", "argz": []}}, "'typo': unknown setting(s) argz"),
        ({"sse": {"type": "sse", "url": "http://h/sse"}}, "'sse': unsupported type 'sse'"),
        ({"list": ["python"]}, "'list': expected an object"),
    ],
)
def test_parse_mcp_servers_names_the_bad_entry(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_mcp_servers(raw)
    assert message in str(caught.value)
    assert "t-456" not in str(caught.value)


async def test_no_servers() -> None:
    async with McpServers([]) as servers:
        assert servers.tools() == [] and servers.status() == {}


def test_invalid_json_and_duplicate_names() -> None:
    with pytest.raises(ValueError, match="invalid JSON"):
        parse_mcp_servers_json("{nope")
    with pytest.raises(ValueError, match="configured twice: a"):
        McpServers([McpServerConfig(name="a", command="x"), McpServerConfig(name="a", url="http://h")])
