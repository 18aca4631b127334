"""Redaction of secrets and personal data before text leaves for the model or is stored.

A :class:`Redactor` replaces every match of its enabled rules with a typed placeholder such as
``[REDACTED:email]``, so the model still sees that something was there and what kind of thing it was.

Design points:

- Every pattern is precompiled and written so that matching stays linear in the input: repetitions are
  separated by mandatory delimiters, every match start is anchored by a lookbehind rejecting the middle of a
  run, and the multi-line private-key rule is a scan with cached searches rather than one lazy ``.*?``.
- Rules err on the side of leaving ordinary text alone where a wrong hit would hurt the conversation (phone
  numbers, card numbers) and on the side of redacting where a miss would leak a credential.
- ``redact`` repeats its passes until nothing changes, so redacting its own output changes nothing: a
  placeholder never matches a rule, and a neighbour that a replacement exposes is handled in the same call.
- Rules match a folded copy of the text (NFKC, invisible characters removed; ``core/guards/folding.py``) and
  then the text as written, so a zero-width space inside a key or a full-width e-mail address is found; what
  they find in the copy is replaced in the text, whose other characters stay exactly as they were. An ASCII
  text, or one that folding leaves alone, costs one run of the rules.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from core.guards.folding import Folded, fold

__all__ = ["ALL_RULES", "Redacted", "Redaction", "Redactor", "placeholder"]

ALL_RULES: tuple[str, ...] = (
    "openai_key",
    "slack_token",
    "github_token",
    "aws_access_key",
    "private_key",
    "email",
    "phone",
    "card",
)

# Rules run in this order: whole key blocks first (their base64 could look like other tokens), then the
# prefixed credentials, then e-mail, then cards before phones (a grouped card number is never a phone).
_APPLY_ORDER: tuple[str, ...] = (
    "private_key",
    "github_token",
    "slack_token",
    "openai_key",
    "aws_access_key",
    "email",
    "card",
    "phone",
)

_MAX_PASSES = 4  # a second pass only runs when the first changed something; more is a safety bound


@dataclass(frozen=True, slots=True)
class Redaction:
    """How many matches of one rule were replaced."""

    kind: str
    count: int


@dataclass(frozen=True, slots=True)
class Redacted:
    """The redacted text and what was taken out of it (kinds in ``ALL_RULES`` order, only those found)."""

    text: str
    redactions: tuple[Redaction, ...]

    @property
    def changed(self) -> bool:
        return bool(self.redactions)


def placeholder(kind: str) -> str:
    """The text that replaces a match of rule ``kind``."""
    return f"[REDACTED:{kind}]"


_Span = tuple[int, int]
_RuleFn = Callable[[str], list[_Span]]  # the spans of the text to replace, in order, not overlapping

# --- credentials with a recognisable prefix -----------------------------------------------------------------

_OPENAI_KEY = re.compile(r"(?<![A-Za-z0-9_-])sk-[A-Za-z0-9_-]{20,}", re.ASCII)
_OPENAI_KEY_BODY_SIGNAL = re.compile(r"[A-Z0-9]")  # real keys are mixed-case base62; slugs are lowercase

# Bot, user, app-level, refresh (xoxe), client (xoxc) and cookie (xoxd, often URL-encoded) tokens.
_SLACK_TOKEN = re.compile(
    r"(?<![A-Za-z0-9_-])(?:xoxe\.)?(?:xox[abcdeprs]|xapp)-[A-Za-z0-9%+/=-]{10,}", re.ASCII
)

_GITHUB_TOKEN = re.compile(
    r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
    re.ASCII,
)

_AWS_ACCESS_KEY = re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])", re.ASCII)

# --- e-mail -------------------------------------------------------------------------------------------------
# The lookbehind makes a match start only at the beginning of a local-part run (linear time); the last
# lookahead leaves scp-style remotes such as git@github.com:org/repo.git alone.
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,63}(?![A-Za-z0-9_-])(?!:[\w~/])",
    re.ASCII,
)

# --- payment cards ------------------------------------------------------------------------------------------
# 13-19 digits, either contiguous or in groups of 3-6 with one consistent separator (4-4-4-4, 4-6-5, ...).
# The first digit must be 2-6 (every major scheme), which keeps Discord snowflakes and epoch-millisecond
# timestamps (both start with 1) out; the Luhn check then decides.
_CARD = re.compile(
    r"(?<![A-Za-z0-9_.])(?<![A-Za-z0-9_]-)(?<![0-9] )"
    r"(?:[2-6][0-9]{12,18}|[2-6][0-9]{2,5}(?P<sep>[ -])[0-9]{3,6}(?:(?P=sep)[0-9]{3,6}){1,4})"
    r"(?![A-Za-z0-9_-])(?![.,][0-9])",
    re.ASCII,
)
_CARD_MIN_DIGITS, _CARD_MAX_DIGITS = 13, 19

# --- phone numbers ------------------------------------------------------------------------------------------
# Three shapes only, all carrying phone punctuation or a leading + / 0:
#   intl   +CC then digit groups separated by space/dot/dash, optional (area)/(0): +44 20 7946 0958, +1 (415)
#          555-2671, +49 (0)30 123456, or E.164 without separators (+14155552671, 10+ digits then)
#   nanp   3-3-4 with one consistent separator or (3) 3-4, optional leading "1 ": 415-555-2671, (415) 555-2671
#   trunk  national numbers with a leading 0 and space/dash groups, 9+ digits: 020 7946 0958, 06 12 34 56 78
_PHONE = re.compile(
    r"(?<![A-Za-z0-9_.+-])(?<![0-9] )"
    r"(?:"
    r"(?P<intl>\+[1-9][0-9]{0,14}(?:(?:[ .-]?\([0-9]{1,4}\)[ .-]?|[ .-])[0-9]{1,6}){0,6})"
    r"(?![A-Za-z0-9_])(?![.-][0-9])"
    r"|(?P<nanp>(?:1[ .-])?(?:\([0-9]{3}\) ?[0-9]{3}[ .-][0-9]{4}"
    r"|[0-9]{3}(?P<ns>[ .-])[0-9]{3}(?P=ns)[0-9]{4}))"
    r"(?![A-Za-z0-9_])(?![.-][0-9])(?!(?P=ns)[0-9])"
    r"|(?P<trunk>\(?0[0-9]{1,4}\)?(?P<ts>[ -])[0-9]{2,8}(?:(?P=ts)[0-9]{2,4}){0,3})"
    r"(?![A-Za-z0-9_])(?![.-][0-9])(?!(?P=ts)[0-9])"
    r")",
    re.ASCII,
)
_DIGIT_RUN = re.compile(r"[0-9]+")
_DOTTED_QUAD = re.compile(r"\+[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_PHONE_MIN_DIGITS, _PHONE_MAX_DIGITS = 7, 15
_TRUNK_MIN_DIGITS = 9  # below this a leading-zero group is a date (05-11-2026) more often than a phone
_E164_MIN_DIGITS = 10  # "+" and bare digits only: shorter runs are deltas and amounts (+1250000)

# --- private keys -------------------------------------------------------------------------------------------
_PEM_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----")
# A character that cannot appear in a PEM body (base64, header lines, whitespace, the markers themselves).
_PEM_NON_BODY = re.compile(r"[^A-Za-z0-9+/=\s:,.-]")
# Without an END marker: the key material that follows the header (base64 lines, PEM/PGP header lines).
_PEM_TAIL = re.compile(
    r"(?:[ \t]+[A-Za-z0-9+/=]{16,})*"
    r"(?:[ \t]*\r?\n[ \t]*(?:[A-Za-z0-9+/=]{16,}|(?:Proc-Type|DEK-Info|Version|Comment):[^\r\n]*)?[ \t]*"
    r"(?=\r?\n|\Z))*"
)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _pattern_rule(pattern: re.Pattern[str], accept: Callable[[str], bool] | None = None) -> _RuleFn:
    if accept is None:

        def plain(text: str) -> list[_Span]:
            return [match.span() for match in pattern.finditer(text)]

        return plain

    check = accept

    def checked(text: str) -> list[_Span]:
        return [match.span() for match in pattern.finditer(text) if check(match.group())]

    return checked


def _openai_key_ok(candidate: str) -> bool:
    return _OPENAI_KEY_BODY_SIGNAL.search(candidate, 3) is not None


def _card_ok(candidate: str) -> bool:
    digits = "".join(_DIGIT_RUN.findall(candidate))
    return _CARD_MIN_DIGITS <= len(digits) <= _CARD_MAX_DIGITS and _luhn_ok(digits)


def _phone_span(match: re.Match[str]) -> int:
    """Length of the matched text that is a phone number (0: none). An international number that runs into
    more digit groups than E.164 allows is cut after the last group that still fits."""
    text = match.group()
    if match.group("intl") is None:
        digits = sum(len(run) for run in _DIGIT_RUN.findall(text))
        minimum = _TRUNK_MIN_DIGITS if match.group("trunk") is not None else _PHONE_MIN_DIGITS
        return len(text) if minimum <= digits <= _PHONE_MAX_DIGITS else 0
    if _DOTTED_QUAD.fullmatch(text):
        return 0  # +10.0.0.1 is an address, not a number
    end = 0
    digits = 0
    for run in _DIGIT_RUN.finditer(text):
        if digits + len(run.group()) > _PHONE_MAX_DIGITS:
            break
        digits += len(run.group())
        end = run.end()
    if end < len(text) and text[end] == ")":
        return 0  # would cut inside "(...)"; leave the whole thing alone
    if digits < _PHONE_MIN_DIGITS:
        return 0
    if text[:end].lstrip("+").isdigit() and digits < _E164_MIN_DIGITS:
        return 0
    return end


def _redact_phones(text: str) -> list[_Span]:
    spans = []
    for match in _PHONE.finditer(text):
        length = _phone_span(match)
        if length:
            spans.append((match.start(), match.start() + length))
    return spans


def _redact_private_keys(text: str) -> list[_Span]:
    if "PRIVATE KEY" not in text:
        return []
    spans: list[_Span] = []
    copied_to = 0
    # Both searches return "the first hit at or after p"; a cached hit at or after the new p is still the
    # answer, so each is scanned over the text once however many BEGIN markers there are.
    end_match: re.Match[str] | None = None
    end_exhausted = False
    non_body_at = -1
    while (begin := _PEM_BEGIN.search(text, copied_to)) is not None:
        body_start = begin.end()
        stop: int | None = None
        if not end_exhausted and (end_match is None or end_match.start() < body_start):
            end_match = _PEM_END.search(text, body_start)
            end_exhausted = end_match is None
        if end_match is not None and not end_exhausted:
            if non_body_at < body_start:
                found = _PEM_NON_BODY.search(text, body_start)
                non_body_at = found.start() if found is not None else len(text)
            if non_body_at >= end_match.start():
                stop = end_match.end()
        if stop is None:  # truncated or interrupted block: take the header and the key material after it
            tail = _PEM_TAIL.match(text, body_start)
            stop = body_start + (len(tail.group().rstrip()) if tail is not None else 0)
        spans.append((begin.start(), stop))
        copied_to = stop
    return spans


def _guarded(marker: str, rule: _RuleFn) -> _RuleFn:
    """Skip a rule's regex entirely when a substring every match contains is absent."""

    def guarded(text: str) -> list[_Span]:
        return rule(text) if marker in text else []

    return guarded


_RULES: dict[str, _RuleFn] = {
    "openai_key": _guarded("sk-", _pattern_rule(_OPENAI_KEY, _openai_key_ok)),
    "slack_token": _pattern_rule(_SLACK_TOKEN),
    "github_token": _pattern_rule(_GITHUB_TOKEN),
    "aws_access_key": _pattern_rule(_AWS_ACCESS_KEY),
    "private_key": _redact_private_keys,
    "email": _guarded("@", _pattern_rule(_EMAIL)),
    "phone": _redact_phones,
    "card": _pattern_rule(_CARD, _card_ok),
}
assert set(_RULES) == set(ALL_RULES) == set(_APPLY_ORDER)


class Redactor:
    """Replaces secrets and personal data with typed placeholders; stateless after construction."""

    __slots__ = ("_enabled", "_rules")

    def __init__(self, enabled: Iterable[str] = ALL_RULES) -> None:
        names = (enabled,) if isinstance(enabled, str) else tuple(enabled)
        unknown = sorted(set(names) - set(ALL_RULES))
        if unknown:
            raise ValueError(
                f"unknown redaction rule(s): {', '.join(unknown)}; valid rules are: {', '.join(ALL_RULES)}"
            )
        chosen = frozenset(names)
        self._enabled: tuple[str, ...] = tuple(name for name in ALL_RULES if name in chosen)
        self._rules: tuple[tuple[str, _RuleFn], ...] = tuple(
            (name, _RULES[name]) for name in _APPLY_ORDER if name in chosen
        )

    @property
    def enabled(self) -> tuple[str, ...]:
        """The enabled rule names, in ``ALL_RULES`` order."""
        return self._enabled

    def __repr__(self) -> str:
        return f"Redactor(enabled={self._enabled!r})"

    def redact(self, text: str) -> Redacted:
        """``text`` with every match replaced: first in its folded copy (what a zero-width character or a
        full-width form hid), mapped back onto the text, then in the text as written (an invisible character
        that separates a secret from a word before it)."""
        counts: dict[str, int] = {}
        redacted = text
        folded = fold(text)
        if folded is not None:
            edit = self._run(folded.text, counts)
            if edit.marks:
                redacted = edit.onto(text, folded)
        redacted = self._run(redacted, counts).text
        found = tuple(Redaction(name, counts[name]) for name in ALL_RULES if name in counts)
        return Redacted(redacted if found else text, found)

    def _run(self, text: str, counts: dict[str, int]) -> _Edit:
        edit = _Edit(text)
        for _ in range(_MAX_PASSES):
            changed = False
            for name, rule in self._rules:
                spans = rule(edit.text)
                if spans:
                    edit.replace(spans, placeholder(name))
                    counts[name] = counts.get(name, 0) + len(spans)
                    changed = True
            if not changed:
                break
        return edit


class _Edit:
    """A text being redacted, and for each placeholder in it the span of the starting text it replaced."""

    __slots__ = ("marks", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        # per placeholder: (start, end) in this text, (start, end) of what it replaced in the starting text
        self.marks: list[tuple[int, int, int, int]] = []

    def _source(self, position: int) -> int:
        """Where the character at ``position`` (not inside a placeholder) was in the starting text."""
        index = bisect_right(self.marks, (position, position)) - 1
        if index < 0:
            return position
        _, end, _, source_end = self.marks[index]
        return source_end + position - end

    def _mark_at(self, position: int) -> tuple[int, int, int, int] | None:
        index = bisect_right(self.marks, (position, len(self.text) + 1)) - 1
        if index >= 0 and self.marks[index][0] <= position < self.marks[index][1]:
            return self.marks[index]
        return None

    def replace(self, spans: list[_Span], replacement: str) -> None:
        """Replace each span with ``replacement``; a placeholder a span overlaps becomes part of it."""
        pieces: list[str] = []
        marks: list[tuple[int, int, int, int]] = []
        kept = iter(self.marks)
        pending = next(kept, None)
        copied = shift = 0
        for start, end in spans:
            first, last = self._mark_at(start), self._mark_at(end - 1)
            source_start = first[2] if first is not None else self._source(start)
            source_end = last[3] if last is not None else self._source(end - 1) + 1
            while pending is not None and pending[0] < end:  # marks before the span stay; inside it, go
                if pending[1] <= start:
                    marks.append((pending[0] + shift, pending[1] + shift, pending[2], pending[3]))
                pending = next(kept, None)
            pieces.append(self.text[copied:start])
            at = start + shift
            marks.append((at, at + len(replacement), source_start, source_end))
            pieces.append(replacement)
            shift += len(replacement) - (end - start)
            copied = end
        while pending is not None:
            marks.append((pending[0] + shift, pending[1] + shift, pending[2], pending[3]))
            pending = next(kept, None)
        pieces.append(self.text[copied:])
        self.text = "".join(pieces)
        self.marks = marks

    def onto(self, original: str, folded: Folded) -> str:
        """The placeholders put into ``original``, of which the starting text was the folded copy."""
        pieces: list[str] = []
        copied = 0
        for start, end, source_start, source_end in self.marks:
            begin, stop = folded.original(source_start, source_end)
            pieces.append(original[copied : max(begin, copied)])
            pieces.append(self.text[start:end])
            copied = max(stop, copied)
        pieces.append(original[copied:])
        return "".join(pieces)
