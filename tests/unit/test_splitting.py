"""The one splitter (bots/splitting.py) in both platforms' styles."""

from __future__ import annotations

import random

from bots.splitting import Splitting

SLACK_LIKE = Splitting(200, paragraphs=True, trim_spaces=True)
DISCORD_LIKE = Splitting(200)


def test_paragraphs_anywhere_in_reach_or_the_last_line_break_past_half() -> None:
    text = "Intro line.\n\n" + "\n".join(f"line {n} of a long list" for n in range(20))
    assert SLACK_LIKE.split(text)[0] == "Intro line."
    first = DISCORD_LIKE.split(text)[0]
    assert first.startswith("Intro line.\n\nline 0") and len(first) > 100


def test_a_cut_between_words_drops_the_space_or_keeps_it() -> None:
    text = " ".join(["word"] * 100)
    assert all(not piece.startswith(" ") for piece in SLACK_LIKE.split(text))
    assert "".join(DISCORD_LIKE.split(text)) == text


def test_every_piece_fits_renders_its_fences_and_stays_put_while_text_grows() -> None:
    rng = random.Random(5)
    words = ["alpha", "beta", "gamma", "delta", "`x`", "**b**"]
    blocks = []
    for n in range(40):
        if n % 7 == 3:
            code = "\n".join(
                " ".join(rng.choices(words, k=rng.randint(1, 8))) for _ in range(rng.randint(2, 25))
            )
            blocks.append(f"```python\n{code}\n```")
        else:
            blocks.append(" ".join(rng.choices(words, k=rng.randint(3, 60))))
    text = "\n\n".join(blocks)
    for style in (SLACK_LIKE, DISCORD_LIKE):
        pieces = style.split(text)
        assert all(len(piece) <= style.limit and piece.count("```") % 2 == 0 for piece in pieces)
        shorter = style.split(text[: len(text) * 2 // 3])
        assert shorter[:-2] == pieces[: len(shorter) - 2]  # only the tail moves while text is appended
