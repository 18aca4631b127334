"""The gate in front of ``POST /slack/events``: the body is read up to a size limit and its Slack signature
checked on the raw bytes before anything parses it (DESIGN.md §10). Nothing here logs a body."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

from aiohttp import web

MAX_BODY_BYTES = 1024 * 1024  # 1 MiB: Slack's event and command payloads are a few kB
MAX_AGE = 5 * 60  # seconds a signed request stays valid (Slack's own window)
CHUNK = 64 * 1024


class Refused(Exception):
    """A request refused before it is parsed: ``status`` is its answer (401 or 413)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Signed:
    """A body whose signature was verified, and the signature (unique per timestamp and body)."""

    body: bytes
    signature: str


async def read_bounded(request: web.Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, reading at most ``limit + 1`` bytes; ``Refused(413)`` beyond ``limit``."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise Refused(413, "body too large")
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await request.content.read(min(CHUNK, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise Refused(413, "body too large")
    return b"".join(chunks)


class SignatureCheck:
    """Slack's v0 scheme: ``v0=`` + hex HMAC-SHA256 of ``v0:<timestamp>:<raw body>`` with the signing secret,
    the timestamp within ``MAX_AGE`` of now, compared in constant time."""

    def __init__(self, signing_secret: str, *, max_age: int = MAX_AGE) -> None:
        self._secret = signing_secret.encode()
        self._max_age = max_age

    def verify(
        self, body: bytes, timestamp: str | None, signature: str | None, now: float | None = None
    ) -> Signed:
        if not timestamp or not signature or not timestamp.isascii() or not timestamp.isdigit():
            raise Refused(401, "unsigned")
        if len(timestamp) > 12 or abs((time.time() if now is None else now) - int(timestamp)) > self._max_age:
            raise Refused(401, "stale")
        base = b"v0:" + timestamp.encode() + b":" + body
        expected = "v0=" + hmac.new(self._secret, base, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            raise Refused(401, "bad signature")
        return Signed(body, signature)

    async def check(self, request: web.Request, limit: int = MAX_BODY_BYTES) -> Signed:
        """The verified body of ``request``; ``Refused`` (401 unsigned, stale or forged; 413 too large)."""
        body = await read_bounded(request, limit)
        headers = request.headers
        return self.verify(body, headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature"))
