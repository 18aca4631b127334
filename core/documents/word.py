"""Word (DOCX) text with python-docx: paragraphs (headings marked with ``#``) and tables (one row a line,
cells joined by `` | ``), in the order of the document body, with a marker per page.

A DOCX has no fixed pages; its pages are where Word recorded page breaks when it last laid the document out
(``w:lastRenderedPageBreak``). A file never laid out by Word (written by a program) has none; then its hard
page breaks count, and a document without any is one page.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from core.documents.extracted import Bounds, Extracted, Section, Unreadable, require_text, tidy
from core.documents.formats import DocumentFormat
from core.documents.packages import PackageLimits, check_package


def extract(data: bytes, bounds: Bounds, limits: PackageLimits) -> Extracted:
    check_package(data, DocumentFormat.DOCX, limits)
    import docx
    from docx.oxml.ns import qn

    try:
        body = docx.Document(io.BytesIO(data)).element.body
    except Exception as exc:  # python-docx and lxml raise many kinds for a damaged file
        raise Unreadable("it is damaged or not a Word document") from exc
    rendered = any(True for _ in body.iter(qn("w:lastRenderedPageBreak")))
    walker = _Walker(rendered, qn)
    pages = walker.pages(body)
    extracted = Extracted("page", walker.count_pages(body))
    for number, text in enumerate(pages, 1):
        stopped = bounds.stop(number - 1)
        if stopped is not None:
            extracted.stopped = stopped
            break
        extracted.sections.append(Section(number, f"--- page {number} ---", bounds.take(tidy(text))))
    return require_text(extracted, bounds, "it has no text")


class _Walker:
    """The body's text page by page, from one pass over its XML."""

    def __init__(self, rendered: bool, qn: Any) -> None:
        self._rendered = rendered
        self.p, self.t, self.tab, self.br, self.cr = (qn(f"w:{n}") for n in ("p", "t", "tab", "br", "cr"))
        self.tbl, self.tr, self.tc = qn("w:tbl"), qn("w:tr"), qn("w:tc")
        self.rendered_break, self.type = qn("w:lastRenderedPageBreak"), qn("w:type")
        self.style, self.val, self.before = qn("w:pStyle"), qn("w:val"), qn("w:pageBreakBefore")

    def count_pages(self, body: Any) -> int:
        if self._rendered:
            return 1 + sum(1 for _ in self._rows_with_breaks(body))
        hard = sum(1 for br in body.iter(self.br) if br.get(self.type) == "page")
        return 1 + hard + sum(1 for p in body.iter(self.p) if self._break_before(p))

    def _rows_with_breaks(self, body: Any) -> Iterator[None]:
        """Each rendered page break; a row going on to a new page once (Word marks each of its cells)."""
        for element in body.iter(self.rendered_break):
            row = next((a for a in element.iterancestors(self.tr)), None)
            if row is None or next(row.iter(self.rendered_break)) is element:
                yield None

    def pages(self, body: Any) -> Iterator[str]:
        from lxml import etree

        page: list[str] = []
        line: list[str] = []
        cells: list[list[str]] = []  # the text of the open table cells, innermost last
        row: list[str] = []
        row_breaks = False
        depth = 0  # table nesting
        for event, element in etree.iterwalk(body, events=("start", "end")):
            tag = element.tag
            if event == "start":
                if tag == self.p and depth == 0 and self._break_before(element):
                    yield "\n".join(page)
                    page = []
                if tag == self.t:
                    line.append(element.text or "")
                elif tag == self.tab:
                    line.append("\t")
                elif tag == self.cr or (tag == self.br and element.get(self.type) != "page"):
                    line.append("\n")
                elif self._is_break(element):
                    if depth:
                        row_breaks = True
                    else:
                        page.append(self._flush(line, None))
                        yield "\n".join(page)
                        page = []
                elif tag == self.tbl:
                    depth += 1
                elif tag == self.tr and depth == 1:
                    row, row_breaks = [], False
                elif tag == self.tc:
                    cells.append([])
                continue
            if tag == self.p:
                text = self._flush(line, element)
                if depth:
                    cells[-1].append(text)
                elif text:
                    page.append(text)
            elif tag == self.tc and cells:
                cell = " ".join(part for part in cells.pop() if part).replace("\n", " ")
                if cells:
                    cells[-1].append(cell)
                elif depth == 1:
                    row.append(cell)
            elif tag == self.tr and depth == 1:
                if row_breaks:
                    yield "\n".join(page)
                    page = []
                if any(row):
                    page.append(" | ".join(row))
            elif tag == self.tbl:
                depth -= 1
        yield "\n".join(page)

    def _is_break(self, element: Any) -> bool:
        if self._rendered:
            return bool(element.tag == self.rendered_break)
        return bool(element.tag == self.br and element.get(self.type) == "page")

    def _break_before(self, paragraph: Any) -> bool:
        """A hard "page break before" on the paragraph (counted only when Word recorded no layout)."""
        if self._rendered:
            return False
        flag = next(paragraph.iter(self.before), None)
        return flag is not None and flag.get(self.val) not in ("0", "false", "off")

    def _flush(self, line: list[str], paragraph: Any) -> str:
        text = "".join(line).strip()
        line.clear()
        if paragraph is not None and text:
            style = next(paragraph.iter(self.style), None)
            name = str(style.get(self.val) or "") if style is not None else ""
            if name == "Title":
                return f"# {text}"
            if name.startswith("Heading") and name[7:].isdigit():
                return f"{'#' * min(int(name[7:]), 6)} {text}"
        return text
