"""tiktoken's ranks (token bytes -> rank) parsed once per table file, kept in a local cache.

tiktoken reads an encoding's ``.tiktoken`` file (verified against the SHA-256 its constructor names) and
parses its 200,000 base64 lines in Python on every start: about 0.1 s for o200k_base, a third of the time it
takes to have the tables. ``parsed_ranks`` does what tiktoken's ``load_tiktoken_bpe`` does, reading the file
the same way (tiktoken's own cache and hash check), and keeps the parsed ranks in ``marshal`` form next to
tiktoken's cache, under the file's SHA-256: the next start reads them back in a quarter of the time. A cache
entry is used only when its own checksum matches and it names the same source hash, and only from a folder
that this user or root owns and nobody else can write to; anything unreadable is parsed again (and the entry
rewritten where the folder allows). Nothing here changes what the ranks are: counts stay exact.
"""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import logging
import marshal
import os
import stat
import tempfile
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

MAGIC = b"threadwise-ranks-1"
SUFFIX = ".ranks"


def parsed_ranks(tiktoken_bpe_file: str, expected_hash: str | None = None) -> dict[bytes, int]:
    """The ranks of a ``.tiktoken`` file, as ``tiktoken.load.load_tiktoken_bpe`` returns them."""
    from tiktoken.load import read_file_cached

    contents = read_file_cached(tiktoken_bpe_file, expected_hash)  # verified against expected_hash
    source = expected_hash or hashlib.sha256(contents).hexdigest()
    folders = cache_folders()
    for folder, _ in folders:
        cached = read_entry(folder / f"{source}{SUFFIX}", source)
        if cached is not None:
            return cached
    ranks = parse(contents, tiktoken_bpe_file)
    writable = [folder for folder, may_write in folders if may_write]
    if writable:
        write_entry(writable[0] / f"{source}{SUFFIX}", source, ranks)
    return ranks


def parse(contents: bytes, name: str = "ranks") -> dict[bytes, int]:
    """``token_base64 rank`` lines into a dict, as tiktoken parses them (faster: one split, no per-line
    ``base64`` module call)."""
    fields = contents.split()
    if len(fields) % 2:
        raise ValueError(f"Error parsing {name}: an odd number of fields")
    try:
        decode = binascii.a2b_base64
        return dict(zip(map(decode, fields[0::2]), map(int, fields[1::2]), strict=True))
    except (ValueError, binascii.Error) as exc:
        raise ValueError(f"Error parsing {name}: {exc}") from exc


def cache_folders() -> list[tuple[Path, bool]]:
    """Where entries are looked for, in order, each with whether to write there: tiktoken's cache folder
    (written when it is this user's with its owner write bit set; a folder laid out read-only, as an image's
    tables or a shared checkout's, is only read), then the user's cache folder (``$XDG_CACHE_HOME`` or
    ``~/.cache``, under ``threadwise``). Only folders nobody else can write to are listed."""
    tiktoken_dir = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    if tiktoken_dir is None:
        tiktoken_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    folders: list[tuple[Path, bool]] = []
    if tiktoken_dir and _trusted(Path(tiktoken_dir), writable=False):
        folders.append((Path(tiktoken_dir), _trusted(Path(tiktoken_dir), writable=True)))
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    own = Path(home) / "threadwise"
    if not any(writable for _, writable in folders):
        with contextlib.suppress(OSError):
            own.mkdir(parents=True, exist_ok=True, mode=0o700)
        if _trusted(own, writable=True):
            folders.append((own, True))
    return folders


def _trusted(folder: Path, *, writable: bool) -> bool:
    """A folder whose entries nobody but this user (or root) can have written; ``writable``: and this user
    owns it with its write bit set."""
    try:
        info = folder.stat()
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode) or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return False
    if writable:
        return info.st_uid == os.getuid() and bool(info.st_mode & stat.S_IWUSR)
    return info.st_uid in (os.getuid(), 0)


def read_entry(path: Path, source: str) -> dict[bytes, int] | None:
    """The ranks an entry holds, or None when it is missing, for another source, or damaged."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    header, _, payload = data.partition(b"\n")
    parts = header.split(b" ")
    if len(parts) != 3 or parts[0] != MAGIC or parts[1] != source.encode():
        return None
    if hashlib.sha256(payload).hexdigest().encode() != parts[2]:
        log.warning("token ranks cache %s is damaged; parsing the tables again", path)
        return None
    try:
        ranks = marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        return None
    return ranks if _is_ranks(ranks) else None


def _is_ranks(value: object) -> bool:
    if not isinstance(value, dict) or not value:
        return False
    key, rank = next(iter(value.items()))
    return isinstance(key, bytes) and isinstance(rank, int)


def write_entry(path: Path, source: str, ranks: dict[bytes, int]) -> None:
    """Written to a temporary name and renamed, so a reader never sees half an entry; a folder that refuses
    the write leaves the next start parsing again, nothing worse."""
    payload = marshal.dumps(ranks)
    header = b" ".join((MAGIC, source.encode(), hashlib.sha256(payload).hexdigest().encode()))
    temporary = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "wb") as file:
            file.write(header + b"\n" + payload)
        os.replace(temporary, path)
    except OSError as exc:
        log.debug("token ranks cache not written to %s: %s", path, exc)
        with contextlib.suppress(OSError):
            temporary.unlink()
