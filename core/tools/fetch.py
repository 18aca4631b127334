"""The ``fetch_url`` tool: read a public web page and hand the model its readable text.

Safety (server-side request forgery): only http and https; the host is resolved once per hop and refused
when any of its addresses is not public (see ``core.tools.addresses``) unless allow-listed; the connection
then goes to exactly the addresses that were checked (a resolver pinned to them, so a second DNS answer
cannot rebind the name to an internal address); redirects are followed by hand, each hop checked again; body
size and total time are capped; no proxies from the environment, no cookies, no credentials in URLs. Every
failure is a ``ToolError`` whose message the model can relay to the user.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Literal

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from pydantic import BaseModel, ConfigDict, Field
from yarl import URL

from core.tools.addresses import AddressPolicy, IPAddress, normalize_host, parse_ip
from core.tools.registry import Tool, ToolContext, ToolError

log = logging.getLogger(__name__)

__all__ = ["FetchArgs", "FetchOptions", "FetchedPage", "UrlFetcher", "extract_html", "fetch_url_tool"]

Resolve = Callable[[str, int], Awaitable[Sequence[str]]]
"""``(host, port) -> IP address strings``: a stand-in for DNS (tests); production uses ``getaddrinfo``."""

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_URL_CHARS = 8192
_CHUNK = 64 * 1024
_THREAD_PARSE_CHARS = 100_000  # HTML larger than this is parsed off the event loop
_TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/x-ndjson",
        "application/xml",
        "application/javascript",
        "application/ecmascript",
        "application/x-yaml",
        "application/yaml",
        "application/toml",
    }
)
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]{1,40})""", re.I)


class FetchArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="The absolute http:// or https:// URL of the page to read.")


@dataclass(frozen=True, slots=True)
class FetchOptions:
    allow: tuple[str, ...] = ()  # hosts or CIDRs (optionally :port) exempt from the private-address refusal
    max_bytes: int = 1_000_000  # body cap: reading stops beyond it and the answer says it was cut
    max_chars: int = 20_000  # readable text returned to the model (cut with a note)
    timeout: float = 10.0  # whole fetch, DNS and redirects included
    max_redirects: int = 3
    user_agent: str = "Threadwise/0.1 (+fetch_url tool)"
    resolve: Resolve | None = field(default=None, compare=False, repr=False)  # tests only; None = real DNS


@dataclass(frozen=True, slots=True)
class FetchedPage:
    url: str  # after redirects
    status: int
    content_type: str
    title: str | None
    text: str
    bytes_read: int
    cut: bool  # the body was longer than ``max_bytes``

    def render(self, max_chars: int) -> str:
        """The text for the model: address, title, notes, then the readable text (at most ``max_chars``)."""
        lines = [f"URL: {self.url}"]
        if self.title:
            lines.append(f"Title: {self.title}")
        text = self.text
        notes: list[str] = []
        if self.cut:
            notes.append(f"only the first {self.bytes_read:,} bytes of the page were read")
        if len(text) > max_chars:
            shown = text[:max_chars]
            space = shown.rfind(" ", max(0, max_chars - 200))
            if space > 0:
                shown = shown[:space]
            notes.append(f"text cut at {len(shown):,} of {len(text):,} characters")
            text = shown.rstrip() + " …"
        if notes:
            lines.append(f"Note: {'; '.join(notes)}.")
        lines.append("")
        lines.append(text if text.strip() else "(the page has no readable text)")
        return "\n".join(lines)


class _PinnedResolver(AbstractResolver):
    """Answers aiohttp's lookups with the addresses the policy already checked, and nothing else."""

    def __init__(self) -> None:
        self._pins: dict[str, tuple[IPAddress, ...]] = {}

    def pin(self, host: str, addresses: Sequence[IPAddress]) -> None:
        self._pins[normalize_host(host)] = tuple(addresses)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results: list[ResolveResult] = []
        for address in self._pins.get(normalize_host(host), ()):
            address_family = socket.AF_INET if address.version == 4 else socket.AF_INET6
            if family not in (socket.AF_UNSPEC, address_family):
                continue
            results.append(
                {
                    "hostname": host,
                    "host": str(address),
                    "port": port,
                    "family": address_family,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                }
            )
        if not results:
            raise OSError(f"{host} has no checked address")  # never falls back to a fresh DNS lookup
        return results

    async def close(self) -> None:
        return None


def _shown(url: str | URL) -> str:
    text = str(url)
    return text if len(text) <= 200 else text[:199] + "…"


def _kind(mime: str) -> Literal["html", "text"] | None:
    if mime in _HTML_TYPES:
        return "html"
    if mime.startswith("text/") or mime in _TEXT_TYPES:
        return "text"
    if mime.startswith("application/") and mime.endswith(("+json", "+xml")):
        return "text"
    return None


def _sniff_kind(body: bytes) -> Literal["html", "text"] | None:
    """For answers without a Content-Type: HTML or UTF-8 text, else nothing readable."""
    head = body[:1024].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "html"
    if b"\x00" in body[:8192]:
        return None
    try:
        codecs.getincrementaldecoder("utf-8")().decode(body, final=False)
    except UnicodeDecodeError:
        return None
    return "text"


def _encoding(declared: str | None, body: bytes, kind: str) -> str:
    for candidate in (_bom_encoding(body), declared, _meta_charset(body) if kind == "html" else None):
        if candidate:
            try:
                return codecs.lookup(candidate).name
            except LookupError:
                continue
    return "utf-8"


def _bom_encoding(body: bytes) -> str | None:
    if body.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return None


def _meta_charset(body: bytes) -> str | None:
    match = _META_CHARSET.search(body[:4096])
    return match.group(1).decode("ascii") if match else None


# ---------------------------------------------------------------------------------------------- HTML to text

_SKIP = frozenset(
    {"script", "style", "noscript", "template", "svg", "math", "iframe", "object", "canvas", "audio", "video"}
)
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta"}) | {
    "param",
    "source",
    "track",
    "wbr",
}
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_PARAGRAPH = (
    _HEADINGS
    | {"p", "pre", "blockquote", "table", "ul", "ol", "dl", "section", "article", "main", "header", "footer"}
    | {"nav", "aside", "figure", "form", "fieldset", "details", "address"}
)
_LINE = frozenset(
    {"div", "li", "tr", "dt", "dd", "figcaption", "caption", "summary", "hr", "option", "label"}
)
_SPACE = re.compile(r"\s+")


class _TextExtractor(HTMLParser):
    """Readable text of an HTML page: scripts, styles and hidden elements dropped, blocks on their own lines,
    headings and list items marked the Markdown way, ``<pre>`` kept as is."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title: str | None = None
        self._title_parts: list[str] | None = None
        self._parts: list[str] = []
        self._newlines = 2  # trailing newlines of the output (2 at the start: no leading blank lines)
        self._pending_space = False
        self._skip: list[str] = []  # open elements whose content is dropped
        self._pre = 0

    # -- output
    def _break(self, count: int) -> None:
        self._pending_space = False
        if self._newlines < count:
            self._parts.append("\n" * (count - self._newlines))
            self._newlines = count

    def _marker(self, text: str) -> None:
        self._break(1)
        self._parts.append(text)
        self._newlines = 0
        self._pending_space = True

    def _text(self, data: str) -> None:
        if self._pre:
            self._parts.append(data)
            stripped = data.rstrip("\n")
            self._newlines = (len(data) - len(stripped)) + (self._newlines if not stripped else 0)
            self._pending_space = False
            return
        collapsed = _SPACE.sub(" ", data)
        core = collapsed.strip()
        if not core:
            self._pending_space = self._pending_space or bool(collapsed)
            return
        if (self._pending_space or collapsed[0] == " ") and self._newlines == 0:
            self._parts.append(" ")
        self._parts.append(core)
        self._newlines = 0
        self._pending_space = collapsed[-1] == " "

    # -- parser callbacks
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip:
            if tag not in _VOID:
                self._skip.append(tag)
            return
        if tag in _SKIP or (tag not in _VOID and _hidden(attrs)):
            self._skip.append(tag)
            return
        if tag == "title":
            if self.title is None:
                self._title_parts = []
            return
        if tag == "br":
            if self._newlines < 2:
                self._parts.append("\n")
                self._newlines += 1
            self._pending_space = False
        elif tag == "li":
            self._marker("-")
        elif tag in _HEADINGS:
            self._break(2)
            self._marker("#" * int(tag[1]))
        elif tag in ("td", "th"):
            if self._newlines == 0:
                self._parts.append(" |")
                self._pending_space = True
        elif tag in _PARAGRAPH:
            self._break(2)
        elif tag in _LINE:
            self._break(1)
        if tag == "pre":
            self._pre += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID or tag in _SKIP or self._skip:
            if not self._skip and tag == "br":
                self.handle_starttag(tag, attrs)
            return
        self.handle_starttag(tag, attrs)
        self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._skip:
            if tag in self._skip:
                while self._skip and self._skip.pop() != tag:
                    pass
            return
        if tag == "title":
            if self._title_parts is not None:
                self.title = _SPACE.sub(" ", "".join(self._title_parts)).strip() or None
                self._title_parts = None
            return
        if tag == "pre" and self._pre:
            self._pre -= 1
        if tag in _PARAGRAPH:
            self._break(2)
        elif tag in _LINE:
            self._break(1)

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._title_parts is not None:
            self._title_parts.append(data)
            return
        self._text(data)

    def result(self) -> str:
        if self._title_parts is not None and self.title is None:  # unclosed <title>
            self.title = _SPACE.sub(" ", "".join(self._title_parts)).strip() or None
        lines = [line.rstrip() for line in "".join(self._parts).split("\n")]
        return "\n".join(lines).strip("\n")


def _hidden(attrs: list[tuple[str, str | None]]) -> bool:
    for name, value in attrs:
        if name == "hidden":
            return True
        if name == "aria-hidden" and (value or "").strip().lower() == "true":
            return True
        if name == "style" and value and "display:none" in value.replace(" ", "").lower():
            return True
    return False


def extract_html(html: str) -> tuple[str | None, str]:
    """``(title, readable text)`` of an HTML document (stdlib ``html.parser``, tolerant of broken markup)."""
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser is lenient, but has raised on odd markup in the past: keep what was read
        log.warning("fetch_url: HTML parser gave up part-way", exc_info=True)
    return parser.title, parser.result()


# ---------------------------------------------------------------------------------------------- fetching


class UrlFetcher:
    """Fetches one URL at a time under the address policy; ``fetch`` raises only ``ToolError``."""

    def __init__(self, options: FetchOptions) -> None:
        if min(options.max_bytes, options.max_chars) < 1 or options.timeout <= 0 or options.max_redirects < 0:
            raise ValueError("fetch: max_bytes, max_chars and timeout must be positive, max_redirects >= 0")
        self.options = options
        self.policy = AddressPolicy.from_allow(options.allow)  # ValueError on a bad entry, at start-up

    async def fetch(self, url: str) -> FetchedPage:
        try:
            async with asyncio.timeout(self.options.timeout):
                return await self._fetch(url)
        except TimeoutError:
            raise ToolError(
                f"Fetching {_shown(url)} took longer than {self.options.timeout:g} seconds and was stopped."
            ) from None

    async def _fetch(self, url: str) -> FetchedPage:
        options = self.options
        resolver = _PinnedResolver()
        connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False, force_close=True)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=options.timeout, sock_read=options.timeout)
        headers = {
            "User-Agent": options.user_agent,
            "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,application/json;q=0.9,*/*;q=0.5",
        }
        current = self._check_url(url)
        async with aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            headers=headers,
            trust_env=False,  # no HTTP(S)_PROXY: a proxy would do its own, unchecked DNS lookup
            cookie_jar=aiohttp.DummyCookieJar(),
        ) as session:
            previous: URL | None = None
            for _ in range(options.max_redirects + 1):
                await self._vet(current, resolver, redirected_from=previous)
                try:
                    async with session.get(current, allow_redirects=False) as response:
                        if response.status in _REDIRECTS:
                            location = response.headers.get("Location")
                            if not location:
                                raise ToolError(
                                    f"{_shown(current)} answered HTTP {response.status} (a redirect) "
                                    "without saying where to."
                                )
                            previous, current = current, self._check_url(location, base=current)
                            continue
                        return await self._read(response, current)
                except aiohttp.ClientError as error:
                    raise ToolError(self._describe(error, current)) from None
                except OSError as error:
                    raise ToolError(
                        f"Could not fetch {_shown(current)}: {error.strerror or error}."
                    ) from None
        raise ToolError(
            f"{_shown(url)} redirected more than {options.max_redirects} times; fetch_url stopped there."
        )

    def _check_url(self, text: str, *, base: URL | None = None) -> URL:
        shown = _shown(text)
        if len(text) > _MAX_URL_CHARS:
            raise ToolError(f"The URL is too long ({len(text):,} characters).")
        try:
            url = URL(text.strip())
            if base is not None:
                url = base.join(url)
            host = url.raw_host
            port = url.port
        except (ValueError, TypeError):
            raise ToolError(f"{shown} is not a valid URL.") from None
        what = "The redirect target" if base is not None else "The URL"
        scheme = url.scheme.lower()
        if not scheme:
            raise ToolError(f"{shown} is not an absolute URL; give one that starts with http:// or https://.")
        if scheme not in ("http", "https"):
            raise ToolError(
                f"{what} {shown} uses {scheme}://; fetch_url only reads http:// and https:// addresses."
            )
        if url.user is not None or url.password is not None:
            raise ToolError(
                f"{what} contains a user name or password (user:pass@host); such URLs are refused."
            )
        if not host:
            raise ToolError(f"{shown} has no host name.")
        if not port:
            raise ToolError(f"{shown} has no usable port.")
        return url.with_fragment(None)

    async def _vet(self, url: URL, resolver: _PinnedResolver, *, redirected_from: URL | None) -> None:
        host = normalize_host(url.raw_host or "")
        port = url.port or 0  # never 0 here: _check_url refused URLs without a port
        via = f" (redirected from {_shown(redirected_from)})" if redirected_from else ""
        addresses: list[IPAddress] = []
        problem = self.policy.host_problem(host, port)
        if problem is None:
            literal = parse_ip(host)
            addresses = [literal] if literal is not None else await self._resolve(host, port, via)
            problem = self.policy.check(host, port, addresses)
        if problem is not None:
            log.info("fetch_url refused %s:%s: %s", host, port, problem)
            raise ToolError(
                f"Refused to fetch {_shown(url)}{via}: {problem}. fetch_url only reads public internet "
                "addresses, not private, internal or cloud-metadata ones."
            )
        resolver.pin(host, addresses)

    async def _resolve(self, host: str, port: int, via: str) -> list[IPAddress]:
        try:
            if self.options.resolve is not None:
                raw = list(await self.options.resolve(host, port))
            else:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
                raw = [str(info[4][0]) for info in infos]
        except (OSError, UnicodeError):
            raise ToolError(f"Could not find the host {host}{via}: the DNS lookup failed.") from None
        addresses: list[IPAddress] = []
        for text in raw:
            address = parse_ip(text)
            if address is None:
                raise ToolError(f"The DNS lookup of {host} gave an unusable answer ({text!r}).")
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise ToolError(f"Could not find the host {host}{via}: the DNS lookup returned no address.")
        return addresses

    async def _read(self, response: aiohttp.ClientResponse, url: URL) -> FetchedPage:
        status = response.status
        if status >= 300:
            reason = f" {response.reason}" if response.reason else ""
            raise ToolError(f"{_shown(url)} answered HTTP {status}{reason}; the page could not be read.")
        declared = response.headers.get("Content-Type")
        mime = response.content_type if declared is not None else None
        kind = _kind(mime) if mime is not None else None
        if mime is not None and kind is None:
            raise ToolError(
                f"{_shown(url)} is {mime} content, which fetch_url cannot read: only web pages (HTML), "
                "plain text and JSON are supported."
            )
        body, cut = await self._read_body(response)
        if kind is None:
            kind = _sniff_kind(body)
            if kind is None:
                raise ToolError(
                    f"{_shown(url)} did not say what it is and does not look like text; fetch_url reads only "
                    "web pages (HTML), plain text and JSON."
                )
        encoding = _encoding(response.charset if declared is not None else None, body, kind)
        text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(body, final=not cut)
        title: str | None = None
        if kind == "html":
            if len(text) > _THREAD_PARSE_CHARS:
                title, text = await asyncio.to_thread(extract_html, text)
            else:
                title, text = extract_html(text)
        log.info("fetch_url %s: HTTP %d, %s, %d bytes, cut=%s", url.host, status, mime, len(body), cut)
        return FetchedPage(
            url=str(url),
            status=status,
            content_type=mime or f"{kind} (undeclared)",
            title=title,
            text=text,
            bytes_read=len(body),
            cut=cut,
        )

    async def _read_body(self, response: aiohttp.ClientResponse) -> tuple[bytes, bool]:
        limit = self.options.max_bytes
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(min(_CHUNK, limit + 1)):
            room = limit - size
            if len(chunk) > room:
                chunks.append(chunk[:room])
                return b"".join(chunks), True
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks), False

    @staticmethod
    def _describe(error: aiohttp.ClientError, url: URL) -> str:
        where = f"{url.host}:{url.port}" if url.port else str(url.host)
        if isinstance(error, TimeoutError):
            return f"{where} did not answer in time while fetching {_shown(url)}."
        if isinstance(error, aiohttp.ClientConnectorCertificateError):
            return f"Could not fetch {_shown(url)}: the TLS certificate of {url.host} could not be verified."
        if isinstance(error, aiohttp.ClientSSLError):
            return f"Could not fetch {_shown(url)}: the TLS connection to {where} failed."
        if isinstance(error, aiohttp.ClientConnectorError):
            reason = error.os_error.strerror or str(error.os_error) or "connection failed"
            return f"Could not connect to {where} to fetch {_shown(url)}: {reason}."
        if isinstance(error, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
            return f"The connection to {where} broke off while fetching {_shown(url)}."
        if isinstance(error, aiohttp.InvalidURL):
            return f"{_shown(url)} is not a valid URL."
        if isinstance(error, aiohttp.ClientResponseError):
            return f"The answer from {where} could not be read ({error.message or error.status})."
        return f"Fetching {_shown(url)} failed ({type(error).__name__})."


def fetch_url_tool(options: FetchOptions) -> Tool:
    """The ``fetch_url`` tool (off by default; an admin or the operator enables it)."""
    fetcher = UrlFetcher(options)

    async def run(arguments: Any, context: ToolContext) -> str:
        if not isinstance(arguments, FetchArgs):
            arguments = FetchArgs.model_validate(arguments)
        page = await fetcher.fetch(arguments.url)
        return page.render(options.max_chars)

    return Tool(
        name="fetch_url",
        description=(
            "Fetch a public web page (http/https) and return its readable text: the address, the title, then "
            "the page text without scripts or markup (also plain text and JSON). Use it when the user gives "
            "a URL or asks about a page's content. Private, internal and cloud-metadata addresses are "
            "refused; images, PDFs and other binary files are not supported."
        ),
        arguments=FetchArgs,
        run=run,
        timeout=options.timeout + 2,
        enabled_by_default=False,
    )
