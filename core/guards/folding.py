"""The copy of a text that redaction rules match on: NFKC-normalised, invisible characters removed.

A zero-width space inside a key, or an e-mail address typed in full-width forms
(``ａｄａ＠ｅｘａｍｐｌｅ．ｃｏｍ``), reads the same to a person and to
the model but slips past ASCII patterns. The rules therefore match on a folded copy, and
:meth:`Folded.original` maps what they found back to the original text, which is otherwise
left exactly as it was (emoji, other scripts, the invisible characters themselves).

Only characters outside ASCII are looked at, one at a time: an ASCII text is never folded, and a non-ASCII
stretch that NFKC leaves alone and that holds no invisible character is skipped in one C call.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass

__all__ = ["INVISIBLE", "Folded", "fold"]

# Unicode format characters (general category Cf, as of Unicode 15), variation selectors and the combining
# grapheme joiner: invisible, so they can sit inside a credential without a reader noticing.
INVISIBLE = re.compile(
    "[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
    "\u034f\ufe00-\ufe0f\U000e0100-\U000e01ef]"
)
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


@dataclass(frozen=True, slots=True)
class Folded:
    """A folded text and where its changed characters came from.

    ``starts[i]`` is where the folding of original character ``origins[i]`` begins in ``text`` and ``ends[i]``
    where it ends (equal for a removed character); every other character maps one to one.
    """

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    origins: tuple[int, ...]

    def _origin(self, position: int) -> int:
        """The index in the original text of the character that produced ``text[position]``."""
        index = bisect_right(self.starts, position) - 1
        if index < 0:
            return position
        if position < self.ends[index]:
            return self.origins[index]
        return self.origins[index] + 1 + position - self.ends[index]

    def original(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original text that ``text[start:end]`` (not empty) came from."""
        return self._origin(start), self._origin(end - 1) + 1


def fold(text: str) -> Folded | None:
    """The folded copy of ``text``, or None when folding changes nothing."""
    if text.isascii() or (unicodedata.is_normalized("NFKC", text) and INVISIBLE.search(text) is None):
        return None
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    origins: list[int] = []
    copied = 0  # original text before this is in pieces
    length = 0  # length of the folded text in pieces
    for run in _NON_ASCII_RUN.finditer(text):
        chunk = run.group()
        if INVISIBLE.search(chunk) is None and unicodedata.is_normalized("NFKC", chunk):
            continue
        for offset, char in enumerate(chunk, run.start()):
            folded = "" if INVISIBLE.match(char) else unicodedata.normalize("NFKC", char)
            if folded == char:
                continue
            pieces.append(text[copied:offset])
            length += offset - copied
            starts.append(length)
            pieces.append(folded)
            length += len(folded)
            ends.append(length)
            origins.append(offset)
            copied = offset + 1
    if not origins:
        return None
    pieces.append(text[copied:])
    return Folded("".join(pieces), tuple(starts), tuple(ends), tuple(origins))
