"""HTML as text with the standard library's html.parser: scripts, styles and other non-content left out,
headings marked with ``#``, list items with ``-``, table cells joined by `` | ``. Fed in chunks, so reading
stops once enough text is collected or time is up."""

from __future__ import annotations

from html.parser import HTMLParser

from core.documents.extracted import Bounds, Extracted, Section, Stop, decode, require_text, tidy

CHUNK = 64 * 1024
SKIPPED = frozenset({"script", "style", "noscript", "template", "svg", "math", "iframe", "object", "head"})
BLOCKS = frozenset(
    {
        "p", "div", "br", "tr", "section", "article", "header", "footer", "main", "nav", "aside", "table",
        "ul", "ol", "dl", "dt", "dd", "pre", "blockquote", "hr", "figure", "figcaption", "form", "address",
    }
)  # fmt: skip
VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source"})


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.size = 0
        self._skipping: list[str] = []
        self._title = False
        self._cells = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":  # a <head> left open ends here
            self._skipping = [open_tag for open_tag in self._skipping if open_tag != "head"]
        if tag in SKIPPED and tag not in VOID:
            self._skipping.append(tag)
        elif tag == "title":
            self._title = True
            self._add("\n# ")
        elif self._skipping:
            return
        elif _heading(tag):
            self._add("\n\n" + "#" * int(tag[1]) + " ")
        elif tag == "li":
            self._add("\n- ")
        elif tag in ("td", "th"):
            self._add(" | " if self._cells else "")
            self._cells += 1
        elif tag in BLOCKS:
            self._add("\n")
        if tag == "tr":
            self._cells = 0

    def handle_endtag(self, tag: str) -> None:
        if self._skipping and tag == self._skipping[-1]:
            self._skipping.pop()
        elif tag == "title":
            self._title = False
            self._add("\n")
        elif not self._skipping and tag != "tr" and (tag in BLOCKS or _heading(tag)):  # rows: one a line
            self._add("\n")

    def handle_data(self, data: str) -> None:
        if self._skipping and not self._title:
            return
        words = " ".join(data.split())
        lead = " " if data[:1].isspace() else ""
        trail = " " if data[-1:].isspace() and words else ""
        self._add(lead + words + trail)

    def _add(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)


def _heading(tag: str) -> bool:
    return len(tag) == 2 and tag[0] == "h" and tag[1] in "123456"


def extract(data: bytes, bounds: Bounds) -> Extracted:
    text = decode(data)
    parser = _Text()
    stopped: Stop | None = None
    for start in range(0, len(text), CHUNK):
        if parser.size >= bounds.max_chars:
            stopped = Stop.FULL
            break
        if (stopped := bounds.stop()) is not None:
            break
        parser.feed(text[start : start + CHUNK])
    else:
        parser.close()
    read = tidy("".join(parser.parts))
    kept = bounds.take(read)
    if len(kept) < len(read):
        stopped = Stop.FULL
    return require_text(Extracted("", 0, [Section(0, "", kept)], stopped), bounds, "it has no text")
