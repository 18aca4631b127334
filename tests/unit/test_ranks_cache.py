"""tiktoken's ranks parsed once per table file and cached (issue 14: `serve` parsed 200,000 base64 lines on
every start). What a user relies on: the ranks, and so every count, are exactly tiktoken's, whether they
come from the table file or from the cache; a damaged or foreign entry is never used; a table folder laid
out read-only is never written to."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import tiktoken
import tiktoken.registry

from core.llm import ranks_cache
from core.llm.tokens import _with_cached_ranks

pytestmark = pytest.mark.needs_token_tables("compares the ranks with tiktoken's own")


def cached_spec(name: str) -> dict[str, object]:
    tiktoken.list_encoding_names()
    return _with_cached_ranks(tiktoken.registry.ENCODING_CONSTRUCTORS[name])


def theirs(name: str) -> dict[bytes, int]:
    ranks: dict[bytes, int] = tiktoken.get_encoding(name)._mergeable_ranks
    return ranks


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's cache folder in tmp_path (tiktoken's own folder is read-only in this workspace)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "threadwise"


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"*{ranks_cache.SUFFIX}"))


def fail_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def parse(contents: bytes, name: str = "") -> dict[bytes, int]:
        raise AssertionError("parsed again")

    monkeypatch.setattr(ranks_cache, "parse", parse)


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_ranks_are_tiktokens_from_the_file_and_from_the_cache(
    name: str, own_cache: Path, tiktoken_cache: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if tiktoken_cache and not os.stat(tiktoken_cache).st_mode & stat.S_IWUSR:  # the shared tables
        assert ranks_cache.cache_folders() == [(Path(tiktoken_cache), False), (own_cache, True)]
    assert cached_spec(name)["mergeable_ranks"] == theirs(name)  # parsed, then cached
    [entry] = entries(own_cache)
    fail_parsing(monkeypatch)
    assert cached_spec(name)["mergeable_ranks"] == theirs(name)  # from the cache this time
    assert entries(own_cache) == [entry]


def test_a_damaged_entry_is_parsed_again_and_replaced(own_cache: Path) -> None:
    expected = theirs("o200k_base")
    cached_spec("o200k_base")
    [entry] = entries(own_cache)
    data = bytearray(entry.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte in the marshalled ranks
    entry.write_bytes(bytes(data))
    assert cached_spec("o200k_base")["mergeable_ranks"] == expected
    assert ranks_cache.read_entry(entry, entry.name.removesuffix(ranks_cache.SUFFIX)) == expected


def test_an_entry_for_another_table_file_is_not_used(
    own_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached_spec("o200k_base")
    [entry] = entries(own_cache)
    source = entry.name.removesuffix(ranks_cache.SUFFIX)
    assert ranks_cache.read_entry(entry, "0" * 64) is None
    assert ranks_cache.read_entry(entry, source) == theirs("o200k_base")


def test_an_entry_in_a_folder_others_may_write_to_is_not_used(own_cache: Path) -> None:
    cached_spec("o200k_base")
    [entry] = entries(own_cache)
    source = entry.name.removesuffix(ranks_cache.SUFFIX)
    ranks_cache.write_entry(entry, source, {b"planted": 0})  # well formed, for the right file, but wrong
    own_cache.chmod(0o777)  # anyone could have written it
    assert cached_spec("o200k_base")["mergeable_ranks"] == theirs("o200k_base")
    own_cache.chmod(0o700)
    assert ranks_cache.read_entry(entry, source) == {b"planted": 0}  # what a trusted folder would give


def test_a_read_only_table_folder_is_read_but_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables = tmp_path / "tables"
    tables.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tables))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-folder"))
    (tmp_path / "not-a-folder").write_text("a file where the user's cache folder would be")
    assert ranks_cache.cache_folders() == [(tables, True)]  # this user's, writable: entries go there
    tables.chmod(0o555)  # laid out read-only (as the image's, or this workspace's shared tables)
    try:
        assert ranks_cache.cache_folders() == [(tables, False)]  # read (an image's entries), not written
        tables.chmod(0o777)
        assert ranks_cache.cache_folders() == []  # anyone could have planted an entry there
    finally:
        tables.chmod(0o755)


def test_the_parser_reads_what_tiktoken_reads() -> None:
    contents = b"IQ== 0\nIg== 1\n\nIyQ= 2\n"
    assert ranks_cache.parse(contents) == {b"!": 0, b'"': 1, b"#$": 2}
    with pytest.raises(ValueError):
        ranks_cache.parse(b"IQ== 0\nIg==\n")
