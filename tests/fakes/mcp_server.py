"""A small MCP server written with the official ``mcp`` package (2.x ``MCPServer``, formerly FastMCP).

stdio (default):      python -m tests.fakes.mcp_server
streamable HTTP:      python -m tests.fakes.mcp_server --http --port 8931 [--token SECRET]

With ``--token`` every HTTP request must carry ``Authorization: Bearer SECRET`` (401 otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from mcp.server.mcpserver import Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

# A 1x1 transparent PNG.
PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
# Legal in MCP (dots, up to 128 characters), not in OpenAI function names (no dots, at most 64).
LONG_DOTTED_NAME = "docs.search_everything_in_the_knowledge_base_and_return_the_best_matches"


def build_server() -> MCPServer:
    server = MCPServer("threadwise-fake", log_level="WARNING")

    @server.tool(description="Add two integers.")
    def add(a: int, b: int) -> int:
        return a + b

    @server.tool(description="Upper-case a text and add an exclamation mark.")
    def shout(text: str) -> str:
        return text.upper() + "!"

    @server.tool(description="Always fails.")
    def fail() -> str:
        raise ToolError("the fake tool failed on purpose")

    @server.tool(description="Sleep for a number of seconds, then say so.")
    async def slow(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return f"slept {seconds}s"

    @server.tool(description="The server's process id.")
    def pid() -> int:
        return os.getpid()

    @server.tool(description="A tiny picture and a caption.", structured_output=False)
    def picture() -> list[Any]:
        return ["a transparent pixel", Image(data=PNG_1X1, format="png")]

    @server.tool(name=LONG_DOTTED_NAME, description="A tool whose name has a dot and is long.")
    def long_dotted(query: str) -> str:
        return f"found {query}"

    return server


def _bearer_guard(app: Any, token: str) -> Any:
    """ASGI middleware refusing HTTP requests without the expected bearer token."""
    expected = f"Bearer {token}".encode()

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != expected:
            await send(
                {"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"text/plain")]}
            )
            await send({"type": "http.response.body", "body": b"unauthorized"})
            return
        await app(scope, receive, send)

    return guarded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8931)
    parser.add_argument("--token", default=None)
    options = parser.parse_args()
    server = build_server()
    if not options.http:
        server.run("stdio")
        return

    import uvicorn

    app: Any = server.streamable_http_app(host=options.host)
    if options.token:
        app = _bearer_guard(app, options.token)
    uvicorn.run(app, host=options.host, port=options.port, log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
