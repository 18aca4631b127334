"""Files people attach to a message: images become vision input, documents (PDF, Word, PowerPoint, Excel,
CSV, HTML, Markdown) are read as text by the core's DocumentReader, text files are inlined, others are named
in a friendly notice. Sizes are checked before downloading and image types by their bytes, never by name."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import discord

from core.documents.formats import DocumentFormat, document_format, legacy_hint
from core.documents.reader import DocumentReader
from core.domain.types import Attachment, ConversationKey
from core.llm.images import sniff_image

log = logging.getLogger(__name__)

DISCORD_CDN_HOSTS = frozenset({"cdn.discordapp.com", "media.discordapp.net"})
MAX_TEXT_BYTES = 200_000  # the core inlines up to 100,000 characters of a text file
TEXT_EXTENSIONS = frozenset(
    {
        "txt", "md", "markdown", "rst", "csv", "tsv", "json", "yaml", "yml", "toml", "ini", "cfg", "conf",
        "log", "xml", "html", "htm", "css", "js", "ts", "tsx", "jsx", "py", "rb", "go", "rs", "java", "kt",
        "c", "h", "cpp", "hpp", "cs", "php", "sh", "bash", "sql", "swift", "scala", "lua", "r", "pl", "diff",
        "patch", "env", "dockerfile", "tf",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ReadAttachments:
    attachments: tuple[Attachment, ...]
    notices: tuple[str, ...]  # what was skipped and why, shown under the answer


READABLE = "I read images, text files and PDF, Word, PowerPoint, Excel, CSV, HTML and Markdown documents."


def _kind(attachment: discord.Attachment, documents: bool) -> str | DocumentFormat:
    mime = (attachment.content_type or "").split(";")[0].strip().lower()
    extension = attachment.filename.rsplit(".", 1)[-1].lower() if "." in attachment.filename else ""
    if mime.startswith("image/"):
        return "image"
    document = document_format(attachment.filename, mime) if documents else None
    if document is not None:
        return document
    if (
        mime.startswith("text/")
        or mime in ("application/json", "application/xml")
        or extension in TEXT_EXTENSIONS
    ):
        return "text"
    return "other"


def allowed_host(url: str, api_url: str) -> bool:
    """Downloads follow the host of the API base they came from (a proxy, a test fake) or Discord's CDN."""
    host = urlsplit(url).hostname or ""
    return host in DISCORD_CDN_HOSTS or host == (urlsplit(api_url).hostname or "")


async def read_attachments(
    items: list[discord.Attachment],
    *,
    max_bytes: int,
    max_count: int,
    api_url: str,
    documents: DocumentReader | None = None,
    key: ConversationKey | None = None,
) -> ReadAttachments:
    """Downloads what the model can use; everything else becomes a notice naming the file. ``key``: the
    conversation the files are for (documents are cut to its model's tokens)."""
    kept: list[Attachment] = []
    notices: list[str] = []
    for item in items:
        kind = _kind(item, documents is not None)
        if len(kept) >= max_count:
            notices.append(f"I skipped {item.filename}: at most {max_count} files are read per message.")
            continue
        if kind == "other":
            legacy = legacy_hint(item.filename)
            why = f": {legacy}." if legacy else f". {READABLE}"
            notices.append(f"I can't read {item.filename}{why}")
            continue
        limit = max_bytes if kind != "text" else min(max_bytes, MAX_TEXT_BYTES)
        if item.size > limit:
            notices.append(
                f"I skipped {item.filename}: it is {item.size / 1_048_576:.1f} MB and files up to "
                f"{limit / 1_048_576:.1f} MB are read."
            )
            continue
        if not allowed_host(item.url, api_url):
            log.warning("attachment %s is on an unexpected host; not downloaded", item.id)
            notices.append(f"I couldn't download {item.filename}.")
            continue
        try:
            data = await item.read()
        except discord.HTTPException as exc:
            log.warning("could not download attachment %s: %s", item.id, exc)
            notices.append(f"I couldn't download {item.filename}.")
            continue
        if isinstance(kind, DocumentFormat) and documents is not None:
            read = await documents.read(item.filename, kind, data, key)
            if read.attachment is None:
                notices.append(f"I couldn't read {item.filename}: {read.problem}.")
                continue
            if read.partial:
                notices.append(f"I read only part of {item.filename}: {read.partial}.")
            kept.append(read.attachment)
            continue
        if kind == "image":
            info = sniff_image(data)
            if info is None:
                notices.append(f"I can't read {item.filename}: it is not a PNG, JPEG, GIF or WebP image.")
                continue
            kept.append(Attachment(item.filename, info.mime, data))
            continue
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            notices.append(f"I can't read {item.filename}: it is not UTF-8 text.")
            continue
        kept.append(Attachment(item.filename, "text/plain", data))
    return ReadAttachments(tuple(kept), tuple(notices))
