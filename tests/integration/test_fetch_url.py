"""fetch_url end to end over real HTTP against a loopback aiohttp server (allow-listed only where a test needs
it): readable text, caps, redirects checked hop by hop, and the SSRF refusals."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import zlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from core.tools.fetch import FetchArgs, FetchOptions, extract_html, fetch_url_tool
from core.tools.registry import ToolContext, ToolError
from tests.support import incoming

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>The  Test Page</title>
<style>body { color: STYLE-MARKER; }</style>
<script>var leaked = "SCRIPT-MARKER";</script></head>
<body><nav><ul><li>Home</li><li>Docs</li></ul></nav>
<h1>Welcome</h1><p>First paragraph with <b>bold</b> words &amp; an entity.</p>
<div hidden>HIDDEN-MARKER</div><script type="module">SCRIPT-MARKER-2</script>
<p>Café — second paragraph.</p></body></html>"""

CONTEXT = ToolContext(message=incoming("read this page", "fetch-1"), is_admin=False)


@dataclass
class PageServer:
    """A small web site on 127.0.0.1: pages, redirects, errors, a slow answer and an image."""

    port: int = 0
    hits: list[tuple[str, str]] = field(default_factory=list)  # (Host header, path)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/page", self.page)
        app.router.add_get("/big", self.big)
        app.router.add_get("/long", self.long)
        app.router.add_get("/json", self.json)
        app.router.add_get("/image", self.image)
        app.router.add_get("/redirect", self.redirect)
        app.router.add_get("/loop/{n}", self.loop)
        app.router.add_get("/status/{code}", self.status)
        app.router.add_get("/slow", self.slow)
        app.router.add_get("/bomb", self.bomb)
        return app

    def _hit(self, request: web.Request) -> None:
        self.hits.append((request.headers.get("Host", ""), request.path))

    async def page(self, request: web.Request) -> web.Response:
        self._hit(request)
        return web.Response(text=PAGE, content_type="text/html", charset="utf-8")

    async def big(self, request: web.Request) -> web.Response:
        self._hit(request)
        return web.Response(text="0123456789" * 20_000, content_type="text/plain")

    async def long(self, request: web.Request) -> web.Response:
        self._hit(request)
        body = "".join(f"<p>Paragraph number {n} says something.</p>" for n in range(500))
        return web.Response(text=f"<title>Long</title>{body}", content_type="text/html")

    async def json(self, request: web.Request) -> web.Response:
        self._hit(request)
        return web.json_response({"answer": 42, "words": ["a", "b"]})

    async def image(self, request: web.Request) -> web.Response:
        self._hit(request)
        return web.Response(body=b"\x89PNG\r\n\x1a\n" + bytes(64), content_type="image/png")

    async def redirect(self, request: web.Request) -> web.Response:
        self._hit(request)
        raise web.HTTPFound(request.query["to"])

    async def loop(self, request: web.Request) -> web.Response:
        self._hit(request)
        n = int(request.match_info["n"])
        if n >= int(request.query.get("stop", "1000")):
            return web.Response(text=f"arrived after {n} redirects", content_type="text/plain")
        raise web.HTTPFound(f"/loop/{n + 1}?{request.query_string}")

    async def status(self, request: web.Request) -> web.Response:
        self._hit(request)
        return web.Response(status=int(request.match_info["code"]), text="nope")

    async def bomb(self, request: web.Request) -> web.Response:
        self._hit(request)
        body = zlib.compress(b"A" * 20_000_000, 1)
        return web.Response(body=body, headers={"Content-Type": "text/plain", "Content-Encoding": "deflate"})

    async def slow(self, request: web.Request) -> web.Response:
        self._hit(request)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.release.wait(), 5)
        return web.Response(text="late")


@contextlib.asynccontextmanager
async def page_server() -> AsyncIterator[PageServer]:
    server = PageServer()
    runner = web.AppRunner(server.app(), access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = int(runner.addresses[0][1])
    try:
        yield server
    finally:
        server.release.set()
        await runner.cleanup()


@pytest.fixture
async def site() -> AsyncIterator[PageServer]:
    async with page_server() as server:
        yield server


@pytest.fixture
async def other_site() -> AsyncIterator[PageServer]:
    async with page_server() as server:
        yield server


async def fetch(url: str, **options: object) -> str:
    tool = fetch_url_tool(FetchOptions(**options))  # type: ignore[arg-type]
    output = await tool.run(FetchArgs(url=url), CONTEXT)
    assert isinstance(output, str)
    return output


async def refused(url: str, **options: object) -> str:
    with pytest.raises(ToolError) as caught:
        await fetch(url, **options)
    return str(caught.value)


def allow_site(server: PageServer) -> tuple[str, ...]:
    return (f"127.0.0.1:{server.port}",)


class StaticResolver:
    """A stand-in for DNS: name -> successive answers (the last one repeats); counts lookups."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append(host)
        queue = self.answers.get(host)
        if not queue:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return queue.pop(0) if len(queue) > 1 else queue[0]


# ---------------------------------------------------------------------------------------------- reading


async def test_page_is_returned_as_readable_text_with_the_title_first(site: PageServer) -> None:
    text = await fetch(f"{site.base}/page", allow=allow_site(site))
    lines = text.splitlines()
    assert lines[0] == f"URL: {site.base}/page"
    assert lines[1] == "Title: The Test Page"
    body = "\n".join(lines[2:])
    assert "# Welcome" in body
    assert "First paragraph with bold words & an entity." in body
    assert "Café — second paragraph." in body
    assert "- Home\n- Docs" in body
    for marker in ("SCRIPT-MARKER", "STYLE-MARKER", "HIDDEN-MARKER", "<p>", "<script"):
        assert marker not in text
    assert site.hits == [(f"127.0.0.1:{site.port}", "/page")]


async def test_json_and_plain_text_come_back_as_text(site: PageServer) -> None:
    text = await fetch(f"{site.base}/json", allow=allow_site(site))
    assert '{"answer": 42, "words": ["a", "b"]}' in text
    assert "Title:" not in text


async def test_body_is_cut_at_max_bytes(site: PageServer) -> None:
    text = await fetch(f"{site.base}/big", allow=allow_site(site), max_bytes=10_000, max_chars=50_000)
    assert "Note: only the first 10,000 bytes of the page were read." in text
    body = text.split("\n\n", 1)[1]
    assert body == "0123456789" * 1_000


async def test_the_byte_cap_counts_decompressed_bytes(site: PageServer) -> None:
    text = await fetch(f"{site.base}/bomb", allow=allow_site(site), max_bytes=10_000)
    assert "Note: only the first 10,000 bytes of the page were read" in text
    assert text.split("\n\n", 1)[1].startswith("A" * 10_000)


async def test_text_is_cut_at_max_chars_with_a_note(site: PageServer) -> None:
    text = await fetch(f"{site.base}/long", allow=allow_site(site), max_chars=500)
    assert "Title: Long" in text
    assert "Note: text cut at" in text
    body = text.split("\n\n", 1)[1]
    assert len(body) <= 502 and body.endswith("…")
    assert "Paragraph number 0 says something." in body
    assert "Paragraph number 499" not in body


async def test_non_text_content_is_not_supported(site: PageServer) -> None:
    message = await refused(f"{site.base}/image", allow=allow_site(site))
    assert "image/png" in message and "cannot read" in message


@pytest.mark.parametrize("code", [404, 500])
async def test_http_errors_are_tool_errors(site: PageServer, code: int) -> None:
    message = await refused(f"{site.base}/status/{code}", allow=allow_site(site))
    assert f"answered HTTP {code}" in message


# ---------------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:{port}/page", "127.0.0.1 is a loopback address"),
        ("http://10.1.2.3/", "10.1.2.3 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"),
        ("http://[::1]:{port}/", "::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]:{port}/", "loopback address (127.0.0.1) in IPv6 form"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "cloud metadata address"),
        ("http://100.64.0.1/", "carrier-grade NAT"),
        ("http://0.0.0.0:{port}/", "unspecified"),
        ("http://localhost:{port}/page", "localhost resolves to"),
        (
            "http://metadata.google.internal/computeMetadata/v1/",
            "metadata.google.internal is a cloud metadata",
        ),
        # legacy and disguised spellings of 127.0.0.1
        ("http://2130706433:{port}/", "resolves to 127.0.0.1, a loopback address"),
        ("http://0x7f000001:{port}/", "resolves to 127.0.0.1, a loopback address"),
        ("http://127.1:{port}/", "resolves to 127.0.0.1, a loopback address"),
        ("http://①②⑦.0.0.1:{port}/", "127.0.0.1 is a loopback address"),
        ("http://[0:0:0:0:0:ffff:127.0.0.1]:{port}/", "loopback address (127.0.0.1) in IPv6 form"),
        ("http://[2002:7f00:1::]:{port}/", "loopback address (127.0.0.1) in IPv6 form"),
    ],
)
async def test_internal_addresses_are_refused(site: PageServer, url: str, reason: str) -> None:
    message = await refused(url.format(port=site.port))
    assert reason in message and message.startswith("Refused to fetch")
    assert site.hits == []


async def test_allow_list_entry_for_another_port_does_not_exempt(site: PageServer) -> None:
    message = await refused(f"{site.base}/page", allow=(f"127.0.0.1:{site.port + 1}",))
    assert "loopback" in message
    assert site.hits == []


async def test_a_name_resolving_to_loopback_is_refused(site: PageServer) -> None:
    dns = StaticResolver({"sneaky.example": [["93.184.216.34", "127.0.0.1"]]})
    message = await refused(f"http://sneaky.example:{site.port}/page", resolve=dns)
    assert "sneaky.example resolves to 127.0.0.1, a loopback address" in message
    assert site.hits == []


async def test_connection_goes_to_the_checked_address_without_a_second_lookup(site: PageServer) -> None:
    """DNS rebinding: a second answer would point at the metadata address; the connection never asks again."""
    dns = StaticResolver({"rebind.example": [["127.0.0.1"], ["169.254.169.254"]]})
    text = await fetch(f"http://rebind.example:{site.port}/page", allow=allow_site(site), resolve=dns)
    assert "Title: The Test Page" in text
    assert dns.calls == ["rebind.example"]
    assert site.hits == [(f"rebind.example:{site.port}", "/page")]  # Host header kept


async def test_dns_failure_is_a_tool_error() -> None:
    message = await refused("http://nowhere.example/", resolve=StaticResolver({}))
    assert message == "Could not find the host nowhere.example: the DNS lookup failed."


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("file:///etc/passwd", "uses file://"),
        ("ftp://ftp.example.com/pub/file.txt", "uses ftp://"),
        ("javascript:alert(1)", "uses javascript://"),
        ("gopher://example.com/", "uses gopher://"),
        ("example.com/page", "not an absolute URL"),
        ("http:///nohost", "has no host name"),
        ("http://user:secret@127.0.0.1:{port}/page", "user name or password"),
        ("https://token@127.0.0.1:{port}/page", "user name or password"),
    ],
)
async def test_bad_urls_are_refused(site: PageServer, url: str, expected: str) -> None:
    message = await refused(url.format(port=site.port), allow=allow_site(site))
    assert expected in message
    assert site.hits == []


# ---------------------------------------------------------------------------------------------- redirects


async def test_redirects_on_the_allowed_server_are_followed(site: PageServer) -> None:
    text = await fetch(f"{site.base}/loop/0?stop=3", allow=allow_site(site), max_redirects=3)
    assert text.startswith(f"URL: {site.base}/loop/3?stop=3")
    assert "arrived after 3 redirects" in text


async def test_too_many_redirects(site: PageServer) -> None:
    message = await refused(f"{site.base}/loop/0", allow=allow_site(site), max_redirects=3)
    assert "redirected more than 3 times" in message
    assert [path for _, path in site.hits] == ["/loop/0", "/loop/1", "/loop/2", "/loop/3"]


async def test_redirect_to_an_unlisted_loopback_port_is_refused_at_the_hop(
    site: PageServer, other_site: PageServer
) -> None:
    target = f"{other_site.base}/page"
    message = await refused(f"{site.base}/redirect?to={target}", allow=allow_site(site))
    assert f"Refused to fetch {target} (redirected from {site.base}/redirect" in message
    assert "127.0.0.1 is a loopback address" in message
    assert [path for _, path in site.hits] == ["/redirect"]
    assert other_site.hits == []


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("http://10.1.2.3/admin", "10.1.2.3 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata address"),
        ("http://[::1]:{port}/page", "::1 is a loopback address"),
        ("http://internal.example:{port}/page", "internal.example resolves to 10.0.0.5, a private address"),
        ("http://metadata.google.internal/", "cloud metadata service"),
        ("file:///etc/passwd", "uses file://"),
        ("ftp://example.com/", "uses ftp://"),
        ("http://user:pw@127.0.0.1:{port}/page", "user name or password"),
    ],
)
async def test_redirects_to_forbidden_targets_are_refused(
    site: PageServer, target: str, expected: str
) -> None:
    dns = StaticResolver({"internal.example": [["10.0.0.5"]]})
    location = target.format(port=site.port)
    message = await refused(f"{site.base}/redirect?to={location}", allow=allow_site(site), resolve=dns)
    assert expected in message
    assert [path for _, path in site.hits] == ["/redirect"]


# ---------------------------------------------------------------------------------------------- limits


async def test_whole_fetch_is_bounded_in_time(site: PageServer) -> None:
    started = time.monotonic()
    message = await refused(f"{site.base}/slow", allow=allow_site(site), timeout=0.3)
    assert "took longer than 0.3 seconds" in message
    assert time.monotonic() - started < 2


async def test_connection_refused_is_a_tool_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    message = await refused(f"http://127.0.0.1:{port}/", allow=("127.0.0.1",))
    assert message.startswith(f"Could not connect to 127.0.0.1:{port}")


# ---------------------------------------------------------------------------------------------- the tool


def test_tool_shape() -> None:
    tool = fetch_url_tool(FetchOptions(timeout=7))
    assert tool.name == "fetch_url" and not tool.enabled_by_default and not tool.admin_only
    assert tool.timeout == 9
    function = tool.definition()["function"]
    assert function["name"] == "fetch_url"
    assert function["parameters"]["required"] == ["url"]
    assert function["parameters"]["properties"]["url"]["description"]


def test_bad_allow_entry_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="allow-list entry"):
        fetch_url_tool(FetchOptions(allow=("not a host!",)))


def test_html_extraction_keeps_structure_and_drops_noise() -> None:
    title, text = extract_html(
        "<title>T</title><table><tr><th>A</th><th>B</th></tr><tr><td>1</td><td>2</td></tr></table>"
        "<pre>def f():\n    return 1\n</pre><p>a<br>b</p><noscript>NOSCRIPT</noscript>"
        "<div style='display: none'>GONE</div><svg><text>SVG</text></svg><p>end</p>"
    )
    assert title == "T"
    assert text == "A | B\n1 | 2\n\ndef f():\n    return 1\n\na\nb\n\nend"
