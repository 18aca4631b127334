"""Tools from MCP servers (stdio commands or streamable HTTP URLs), connected at start with the official
``mcp`` package and exposed as registry tools namespaced by server (``<server>__<tool>``).

Each server is owned by one long-lived task that enters the transport and the ``mcp.Client`` and exits them
in that same task (the SDK uses anyio task groups, whose scopes must be left by the task that entered them);
tool calls from other tasks go through the connected client, whose requests are plain awaits on the
dispatcher and work from any task. A server that fails to start, initialize or list its tools is logged and
skipped; one that dies later is marked down on the first failed call (logged once) and its tools then fail
fast with a :class:`~core.tools.registry.ToolError` the model can read.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import re
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, TextIO

import anyio
import httpx2
import mcp_types
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT
from pydantic import ValidationError

from core.tools.mcp_config import McpServerConfig, parse_mcp_servers, parse_mcp_servers_json
from core.tools.registry import Tool, ToolContext, ToolError, ToolFunction, ToolOutput

__all__ = ["McpServerConfig", "McpServers", "parse_mcp_servers", "parse_mcp_servers_json"]

log = logging.getLogger(__name__)

_NOT_TOOL_NAME_CHAR = re.compile(r"[^a-zA-Z0-9_-]")
_MAX_TOOL_NAME = 64
_MAX_LIST_PAGES = 50  # tools/list pages read per server; a paginator that never ends cannot hang start-up
_SHUTDOWN_GRACE = 10.0  # per server; the SDK's own stdio shutdown is bounded at about 6 s
_CLIENT_INFO = mcp_types.Implementation(name="threadwise", version="0.1.0")


class McpServers:
    """The configured MCP servers, connected for the lifetime of an ``async with`` block::

    async with McpServers(settings.mcp_servers) as mcp:
        registry.extend(mcp.tools())
        log.info("MCP: %s", mcp.status())
    """

    def __init__(self, configs: Sequence[McpServerConfig], *, connect_timeout: float = 20.0) -> None:
        names = [config.name for config in configs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"MCP server name(s) configured twice: {', '.join(duplicates)}")
        self._servers = [_Server(config, connect_timeout) for config in configs]
        self._entered = False

    async def __aenter__(self) -> McpServers:
        if self._entered:
            raise RuntimeError("McpServers can be entered only once")
        self._entered = True
        for server in self._servers:
            server.start()
        try:
            await asyncio.gather(*(server.ready.wait() for server in self._servers))
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        await asyncio.gather(*(server.close() for server in self._servers))

    def tools(self) -> list[Tool]:
        """The tools of every server that is up, namespaced ``<server>__<tool>`` (at most 64 characters)."""
        return [tool for server in self._servers for tool in server.registry_tools()]

    def status(self) -> dict[str, str]:
        """Server name -> ``"up (N tools)"`` or ``"down: <reason>"``, for logs and admins."""
        return {server.config.name: server.status() for server in self._servers}


class _Server:
    """One server's connection, owned by one task from connect to close."""

    def __init__(self, config: McpServerConfig, connect_timeout: float) -> None:
        self.config = config
        self.connect_timeout = connect_timeout
        self.ready = asyncio.Event()  # set once connected, failed or stopped
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: Client | None = None
        self._tools: list[Tool] = []
        self._down_reason: str | None = "not started"
        self._closing = False

    # lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        self._down_reason = "connecting"
        self._task = asyncio.create_task(self._own(), name=f"mcp-server-{self.config.name}")

    async def _own(self) -> None:
        name = self.config.name
        connected = False
        deadline = anyio.current_time() + self.connect_timeout
        timed_out = f"no answer within {self.connect_timeout:g}s"
        try:
            with anyio.CancelScope(deadline=deadline) as scope:
                async with AsyncExitStack() as stack:
                    client = await stack.enter_async_context(
                        Client(await self._transport(stack), client_info=_CLIENT_INFO, cache=None)
                    )
                    listed = await _list_tools(client)
                    scope.deadline = math.inf  # connected: the scope now only spans the session's lifetime
                    self._tools = self._make_tools(listed)
                    self._client, self._down_reason, connected = client, None, True
                    log.info(
                        "MCP server %s is up with %d tools (%s)",
                        name,
                        len(self._tools),
                        self.config.transport,
                    )
                    self.ready.set()
                    await self._stop.wait()
            if scope.cancelled_caught and not connected:
                self._fail(timed_out, starting=True)
        except Exception as exc:
            if not connected and anyio.current_time() >= deadline:
                self._fail(timed_out, starting=True)  # the cancelled connect surfaced as a transport error
            else:
                self._fail(_describe(exc), starting=not connected)
        finally:
            self._client = None
            if self._down_reason is None:
                self._down_reason = "shut down"
            self.ready.set()

    async def _transport(self, stack: AsyncExitStack) -> Any:
        config = self.config
        if config.command is not None:
            parameters = StdioServerParameters(
                command=config.command, args=list(config.args), env=dict(config.env) if config.env else None
            )
            return stdio_client(parameters, errlog=_server_stderr())
        assert config.url is not None
        headers = {"Authorization": f"Bearer {config.token}"} if config.token else None
        http = await stack.enter_async_context(
            httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0))
        )
        return streamable_http_client(config.url, http_client=http)

    async def close(self) -> None:
        self._closing = True
        self._stop.set()
        task = self._task
        if task is None or task.done():
            return
        done, _ = await asyncio.wait({task}, timeout=_SHUTDOWN_GRACE)
        if not done:
            log.warning(
                "MCP server %s did not shut down within %gs; abandoning it", self.config.name, _SHUTDOWN_GRACE
            )
            task.cancel()
            await asyncio.wait({task}, timeout=_SHUTDOWN_GRACE)
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.debug("MCP server %s ended with %r", self.config.name, task.exception())

    def _fail(self, reason: str, *, starting: bool) -> None:
        """Mark the server down with a reason; logged once (a skip at start, or the loss of a live server)."""
        was_up = self._down_reason is None
        if not (starting or was_up):
            return  # already down and reported
        self._client = None
        if self._closing:  # calls caught by our own shutdown
            self._down_reason = "shut down" if was_up else reason
            return
        self._down_reason = reason
        if starting:
            log.warning("MCP server %s skipped: %s", self.config.name, reason)
        else:
            log.warning("MCP server %s is down, its tools now fail: %s", self.config.name, reason)

    def status(self) -> str:
        if self._down_reason is None:
            return f"up ({len(self._tools)} tools)"
        return f"down: {self._down_reason}"

    # tools ---------------------------------------------------------------------------------------------
    def registry_tools(self) -> list[Tool]:
        return list(self._tools) if self._down_reason is None else []

    def _make_tools(self, listed: list[mcp_types.Tool]) -> list[Tool]:
        tools: list[Tool] = []
        seen: set[str] = set()
        for remote in listed:
            exposed = _NOT_TOOL_NAME_CHAR.sub("_", f"{self.config.name}__{remote.name}")[:_MAX_TOOL_NAME]
            if exposed in seen:
                log.warning(
                    "MCP server %s: tool %r skipped, its name collides with another as %r",
                    self.config.name,
                    remote.name,
                    exposed,
                )
                continue
            seen.add(exposed)
            description = (
                remote.description
                or remote.title
                or f"The {remote.name} tool of the {self.config.name} server."
            )
            tools.append(
                Tool(
                    name=exposed,
                    description=description,
                    arguments=None,
                    run=self._runner(remote.name, exposed),
                    timeout=self.config.timeout,
                    schema=dict(remote.input_schema),
                    source=f"mcp:{self.config.name}",
                )
            )
        return tools

    def _runner(self, remote_name: str, exposed: str) -> ToolFunction:
        async def run(args: Any, ctx: ToolContext) -> ToolOutput:
            return await self.call(remote_name, exposed, args)

        return run

    async def call(self, remote_name: str, exposed: str, args: Any) -> ToolOutput:
        unavailable = ToolError(f"the {self.config.name} tool server is unavailable")
        client = self._client
        if client is None or self._down_reason is not None:
            raise unavailable
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise ToolError("the arguments must be a JSON object")
        timeout = self.config.timeout
        try:
            async with asyncio.timeout(timeout):
                result = await client.call_tool(remote_name, args, read_timeout_seconds=timeout)
        except TimeoutError:
            raise ToolError(f"{exposed} timed out after {timeout:g}s") from None
        except MCPError as exc:
            if exc.code == REQUEST_TIMEOUT:
                raise ToolError(f"{exposed} timed out after {timeout:g}s") from None
            if exc.code == CONNECTION_CLOSED:
                self._fail("the connection closed (the server exited or dropped the session)", starting=False)
                raise unavailable from None
            raise ToolError(f"{exposed} failed: {exc.error.message}") from None
        except (OSError, httpx2.TransportError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            self._fail(_describe(exc), starting=False)
            raise unavailable from None
        except (RuntimeError, ValidationError) as exc:  # output-schema mismatch, unexpected result shapes
            raise ToolError(f"{exposed} returned an unusable result: {_first_line(str(exc))}") from None
        text = _result_text(result)
        if result.is_error:
            raise ToolError(text or f"{exposed} failed")
        return ToolOutput(text)


async def _list_tools(client: Client) -> list[mcp_types.Tool]:
    tools: list[mcp_types.Tool] = []
    cursor: str | None = None
    for _ in range(_MAX_LIST_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools


def _result_text(result: mcp_types.CallToolResult) -> str:
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            parts.append(block.text)
        elif isinstance(block, mcp_types.ImageContent | mcp_types.AudioContent):
            kind = "image" if isinstance(block, mcp_types.ImageContent) else "audio"
            parts.append(f"[{kind} {block.mime_type}, {_decoded_size(block.data)} bytes, not shown]")
        elif isinstance(block, mcp_types.EmbeddedResource):
            resource = block.resource
            if isinstance(resource, mcp_types.TextResourceContents):
                parts.append(f"[resource {resource.uri}]\n{resource.text}")
            else:
                mime = resource.mime_type or "binary"
                parts.append(
                    f"[resource {resource.uri}: {mime}, {_decoded_size(resource.blob)} bytes, not shown]"
                )
        elif isinstance(block, mcp_types.ResourceLink):
            parts.append(f"[resource link {block.name}: {block.uri}]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
    return "\n".join(parts)


def _decoded_size(data: str) -> int:
    try:
        return len(base64.b64decode(data, validate=False))
    except (binascii.Error, ValueError):
        return len(data)


def _describe(exc: BaseException) -> str:
    """A one-line reason from an exception, looking through the task groups' exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, MCPError):
        if exc.code == CONNECTION_CLOSED:
            return "the connection closed (the server exited or dropped the session; see its stderr)"
        return f"MCP error {exc.code}: {exc.error.message}"
    text = _first_line(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:300] if text.strip() else ""


def _server_stderr() -> TextIO:
    """Where a stdio server's stderr goes: ours, or the process's real one when ours has no file descriptor
    (e.g. under output capture)."""
    for stream in (sys.stderr, sys.__stderr__):
        try:
            if stream is not None:
                stream.fileno()
                return stream
        except (AttributeError, OSError, ValueError):
            continue
    raise RuntimeError("no stderr to give an MCP server")
