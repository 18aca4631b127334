"""Files shared in a message (``files[]``): downloaded with the bot token, checked by size and by content,
and turned into attachments for the core (images as vision input, documents read as text by the core's
DocumentReader, text files inlined); the rest is named in a notice instead of failing the turn."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from core.documents.formats import BY_EXTENSION, document_format, legacy_hint
from core.documents.reader import DocumentReader
from core.domain.types import Attachment, ConversationKey
from core.llm.images import sniff_image
from core.turn.service import MAX_INLINE_TEXT_CHARS

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FileLimits:
    max_files: int = 4
    max_bytes: int = 20 * 1024 * 1024
    max_text_chars: int = MAX_INLINE_TEXT_CHARS


READABLE = (
    "I can read images (PNG, JPEG, GIF, WebP), text files such as code or logs, and PDF, Word, PowerPoint, "
    "Excel, CSV, HTML and Markdown documents."
)


@dataclass(slots=True)
class Collected:
    attachments: list[Attachment] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "name (why)", for the notice
    partial: list[str] = field(default_factory=list)  # documents cut short: "name (how far, why)"
    unknown_kind: bool = False  # a file was skipped for its type: the notice says what can be read

    def notice(self) -> str | None:
        lines = []
        if self.skipped:
            hint = f" {READABLE}" if self.unknown_kind else ""
            lines.append(f":information_source: I couldn't read {'; '.join(self.skipped)}.{hint}")
        if self.partial:
            lines.append(f":information_source: I read only part of {'; '.join(self.partial)}.")
        return "\n".join(lines) or None


class FileFetcher:
    """Downloads Slack-hosted files. The bot token is sent only to Slack's own hosts, or to the host of the
    configured Web API base (a proxy or a test fake), never to a host named by a payload."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        client: AsyncWebClient,
        *,
        token: str,
        api_url: str,
        limits: FileLimits,
        documents: DocumentReader | None = None,
    ) -> None:
        self._session = session
        self._client = client
        self._token = token
        self._api = urlsplit(api_url)
        self._limits = limits
        self._documents = documents

    async def collect(self, files: Sequence[dict[str, Any]], key: ConversationKey | None = None) -> Collected:
        """``key``: the conversation the files are for (documents are cut to its model's tokens)."""
        result = Collected()
        for index, file in enumerate(files):
            name = str(file.get("name") or file.get("title") or file.get("id") or "file")
            if index >= self._limits.max_files:
                result.skipped.append(f"*{name}* (at most {self._limits.max_files} files per message)")
                continue
            try:
                attachment, reason = await self._one(file, name, key, result)
            except (aiohttp.ClientError, TimeoutError, SlackApiError) as exc:
                log.warning("could not download Slack file %s: %s", file.get("id"), exc)
                attachment, reason = None, "the download failed"
            if attachment is not None:
                result.attachments.append(attachment)
            else:
                result.skipped.append(f"*{name}* ({reason})")
        return result

    async def _one(
        self, file: dict[str, Any], name: str, key: ConversationKey | None, result: Collected
    ) -> tuple[Attachment | None, str]:
        if file.get("file_access") == "check_file_info" and file.get("id"):
            info = await self._client.files_info(file=str(file["id"]))
            file = dict(info.get("file") or file)
        mode = file.get("mode")
        if mode in ("tombstone", "hidden_by_limit"):
            return None, "it is no longer available"
        if mode == "external":
            return None, "it is stored outside Slack"
        size = int(file.get("size") or 0)
        if size > self._limits.max_bytes:
            return None, f"{_mb(size)}; files up to {_mb(self._limits.max_bytes)} are read"
        url = file.get("url_private_download") or file.get("url_private")
        if not isinstance(url, str) or not self._trusted(url):
            return None, "it has no Slack download link"
        data, content_type = await self._download(url)
        if data is None:
            return None, f"larger than {_mb(self._limits.max_bytes)}"
        image = sniff_image(data)
        if image is not None:
            return Attachment(name, image.mime, data), ""
        claimed = str(file.get("mimetype") or "")
        if content_type == "text/html" and claimed != "text/html":
            return None, "Slack did not let me download it"  # Slack's sign-in page instead of the file
        # Slack's own ``filetype`` ("pdf", "docx", "markdown") names a document whose name has no extension
        # and whose MIME type is generic (application/octet-stream).
        kind = document_format(name, claimed) or BY_EXTENSION.get(str(file.get("filetype") or ""))
        if kind is not None and self._documents is not None:
            read = await self._documents.read(name, kind, data, key)
            if read.partial:
                result.partial.append(f"*{name}* ({read.partial})")
            return read.attachment, read.problem or ""
        legacy = legacy_hint(name)
        if legacy is not None:
            return None, legacy
        if str(file.get("filetype") or "") in ("pdf", "zip", "gzip", "docx", "xlsx", "pptx", "binary"):
            result.unknown_kind = True
            return None, f"{file['filetype']} files are not supported"
        if len(data) > 4 * self._limits.max_text_chars:  # UTF-8: at most 4 bytes a character; not decoded
            return (
                None,
                f"{_mb(len(data))}; text files up to {self._limits.max_text_chars:,} characters are read",
            )
        if b"\x00" in data:
            result.unknown_kind = True
            return None, "not an image, document or text file"
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            result.unknown_kind = True
            return None, "not an image, document or text file"
        if len(text) > self._limits.max_text_chars:
            return (
                None,
                f"{len(text):,} characters; text files up to {self._limits.max_text_chars:,} are read",
            )
        return Attachment(name, "text/plain", data), ""

    def _trusted(self, url: str) -> bool:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.netloc == self._api.netloc and parts.scheme == self._api.scheme:
            return True
        return parts.scheme == "https" and (host == "slack.com" or host.endswith(".slack.com"))

    async def _download(self, url: str) -> tuple[bytes | None, str]:
        """The file's bytes (``None`` when larger than the limit) and the content type Slack answered with."""
        headers = {"Authorization": f"Bearer {self._token}"}
        async with self._session.get(url, headers=headers, allow_redirects=False) as response:
            if response.status != 200:
                raise aiohttp.ClientResponseError(
                    response.request_info, (), status=response.status, message="download refused"
                )
            chunks: list[bytes] = []
            total = 0
            async for chunk in response.content.iter_chunked(64 * 1024):
                total += len(chunk)
                if total > self._limits.max_bytes:
                    return None, response.content_type
                chunks.append(chunk)
            return b"".join(chunks), response.content_type


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
