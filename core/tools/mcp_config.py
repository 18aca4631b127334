"""MCP server settings (``THREADWISE_MCP_SERVERS``): parsed and checked when the settings load.

Kept apart from :mod:`core.tools.mcp_servers` so that reading the settings does not import the ``mcp`` client
stack (about a second of start-up for every CLI command).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_SERVER_NAME = re.compile(r"[a-zA-Z0-9_-]+")
_ENTRY_KEYS = frozenset({"command", "args", "env", "url", "token", "timeout", "type"})
_STDIO_TYPES = frozenset({"stdio"})
_HTTP_TYPES = frozenset({"http", "streamable-http", "streamable_http", "streamableHttp"})


@dataclass(frozen=True, slots=True)
class McpServerConfig:
    """One MCP server: a stdio ``command`` (with ``args``/``env``) or a streamable HTTP ``url``."""

    name: str  # [a-zA-Z0-9_-]+, used as the tool namespace
    command: str | None = None  # stdio: executable …
    args: tuple[str, ...] = ()
    env: Mapping[str, str] | None = field(default=None, repr=False)  # merged over a minimal safe environment
    url: str | None = None  # … or streamable HTTP URL
    token: str | None = field(default=None, repr=False)  # bearer token for url servers (never logged)
    timeout: float = 30.0  # per tool call

    def __post_init__(self) -> None:
        if not _SERVER_NAME.fullmatch(self.name):
            raise ValueError(f"MCP server name {self.name!r} must match [a-zA-Z0-9_-]+")
        if (self.command is None) == (self.url is None):
            raise ValueError(
                f"MCP server {self.name!r}: give exactly one of 'command' (stdio) or 'url' (HTTP)"
            )
        if self.command is not None and not self.command.strip():
            raise ValueError(f"MCP server {self.name!r}: 'command' is empty")
        if self.url is not None and not self.url.lower().startswith(("http://", "https://")):
            raise ValueError(f"MCP server {self.name!r}: 'url' must be an http:// or https:// URL")
        if self.token is not None and self.url is None:
            raise ValueError(f"MCP server {self.name!r}: 'token' is only for 'url' servers")
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ValueError(f"MCP server {self.name!r}: 'timeout' must be a positive number of seconds")

    @property
    def transport(self) -> str:
        return "stdio" if self.command is not None else "http"


def parse_mcp_servers(raw: Mapping[str, Any]) -> list[McpServerConfig]:
    """Configs from a JSON object mapping server name to entry, e.g.
    ``{"files": {"command": "python", "args": ["-m", "srv"], "env": {"ROOT": "/data"}},
    "search": {"url": "https://…/mcp", "token": "…", "timeout": 10}}``.

    The common ``{"mcpServers": {…}}`` wrapper and a ``"type"`` key (``stdio`` / ``http`` /
    ``streamable-http``) are accepted too. Raises ``ValueError`` naming the bad entry (never its token)."""
    if not isinstance(raw, Mapping):
        raise ValueError("MCP servers must be a JSON object mapping server name to its settings")
    wrapped = raw.get("mcpServers")
    if len(raw) == 1 and isinstance(wrapped, Mapping) and "command" not in wrapped and "url" not in wrapped:
        raw = wrapped
    return [_parse_entry(name, entry) for name, entry in raw.items()]


def parse_mcp_servers_json(text: str) -> list[McpServerConfig]:
    """:func:`parse_mcp_servers` of a JSON document (e.g. the ``THREADWISE_MCP_SERVERS`` setting)."""
    if not text.strip():
        return []
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"MCP servers: invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    return parse_mcp_servers(raw)


def _parse_entry(name: Any, entry: Any) -> McpServerConfig:
    label = f"MCP server {name!r}"
    if not isinstance(name, str) or not _SERVER_NAME.fullmatch(name):
        raise ValueError(f"{label}: the name must match [a-zA-Z0-9_-]+ (it becomes the tool prefix)")
    if not isinstance(entry, Mapping):
        raise ValueError(f"{label}: expected an object with 'command' or 'url'")
    unknown = sorted(str(key) for key in entry if key not in _ENTRY_KEYS)
    if unknown:
        raise ValueError(
            f"{label}: unknown setting(s) {', '.join(unknown)} (allowed: {', '.join(sorted(_ENTRY_KEYS))})"
        )
    command, url, token = entry.get("command"), entry.get("url"), entry.get("token")
    for key, value in (("command", command), ("url", url), ("token", token)):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{label}: '{key}' must be a string")
    kind = entry.get("type")
    if kind is not None:
        if kind in _STDIO_TYPES and command is None:
            raise ValueError(f"{label}: type {kind!r} needs a 'command'")
        if kind in _HTTP_TYPES and url is None:
            raise ValueError(f"{label}: type {kind!r} needs a 'url'")
        if kind not in _STDIO_TYPES | _HTTP_TYPES:
            raise ValueError(f"{label}: unsupported type {kind!r} (stdio or streamable HTTP only)")
    args = entry.get("args", ())
    if isinstance(args, str) or not isinstance(args, Sequence) or not all(isinstance(a, str) for a in args):
        raise ValueError(f"{label}: 'args' must be a list of strings")
    env = entry.get("env")
    if env is not None and (
        not isinstance(env, Mapping)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
    ):
        raise ValueError(f"{label}: 'env' must be an object of string values")
    timeout = entry.get("timeout", 30.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ValueError(f"{label}: 'timeout' must be a number of seconds")
    return McpServerConfig(
        name=name,
        command=command,
        args=tuple(args),
        env=dict(env) if env is not None else None,
        url=url,
        token=token,
        timeout=float(timeout),
    )
