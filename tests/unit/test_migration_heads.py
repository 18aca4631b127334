"""The quick at-head check reads the heads of migration scripts from their source, and leaves every script it
cannot read as plain literals to Alembic (None), so a start never skips a migration it misread."""

from __future__ import annotations

from pathlib import Path

from core.db.migrate import script_heads


def scripts(folder: Path, **bodies: str) -> Path:
    (folder / "__init__.py").write_text("")
    for name, body in bodies.items():
        (folder / f"{name}.py").write_text(f'"""{name}"""\nimport sqlalchemy as sa\n{body}\n')
    return folder


def test_a_chain_has_its_last_revision_as_head(tmp_path: Path) -> None:
    folder = scripts(
        tmp_path,
        a='revision = "0001"\ndown_revision = None',
        b='revision: str = "0002"\ndown_revision: str | None = "0001"\n'
        "branch_labels: str | None = None\ndepends_on: str | None = None",
        c='revision = "0003"\ndown_revision = "0002"',
    )
    assert script_heads(folder) == {"0003"}


def test_branches_have_two_heads_and_a_merge_one(tmp_path: Path) -> None:
    folder = scripts(
        tmp_path,
        a='revision = "a"\ndown_revision = None',
        b='revision = "b"\ndown_revision = "a"',
        c='revision = "c"\ndown_revision = "a"',
    )
    assert script_heads(folder) == {"b", "c"}
    (folder / "d.py").write_text('revision = "d"\ndown_revision = ("b", "c")\n')
    assert script_heads(folder) == {"d"}


def test_what_is_not_a_plain_literal_is_left_to_alembic(tmp_path: Path) -> None:
    chain = 'revision = "0001"\ndown_revision = None'
    for odd in (
        'revision = "00" + "02"\ndown_revision = "0001"',  # computed
        'down_revision = "0001"',  # no revision
        'revision = "0002"',  # no down_revision
        'revision = "0002"\ndown_revision = "0001"\ndepends_on = "0001"',
        'revision = "0002"\ndown_revision = "0001"\nbranch_labels = ("x",)',
        'revision = "0002"\ndown_revision = "0001"\ndef broken(:',
    ):
        folder = tmp_path / str(abs(hash(odd)))
        folder.mkdir()
        assert script_heads(scripts(folder, a=chain, b=odd)) is None, odd
    empty = tmp_path / "empty"
    empty.mkdir()
    assert script_heads(scripts(empty)) is None
