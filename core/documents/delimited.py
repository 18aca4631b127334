"""CSV and TSV with the standard library's csv module: one row a line, cells joined by `` | ``."""

from __future__ import annotations

import csv
import io

from core.documents.extracted import Bounds, Extracted, Section, Stop, Unreadable, decode, require_text
from core.documents.formats import extension

SNIFF_CHARS = 8_192
ROWS_BETWEEN_CHECKS = 256


def extract(data: bytes, bounds: Bounds, name: str) -> Extracted:
    text = decode(data)
    delimiter = "\t" if extension(name) == "tsv" else _delimiter(text[:SNIFF_CHARS])
    lines: list[str] = []
    stopped: Stop | None = None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for index, row in enumerate(reader):
            if bounds.chars >= bounds.max_chars:
                stopped = Stop.FULL
                break
            if index % ROWS_BETWEEN_CHECKS == 0 and (stopped := bounds.stop()) is not None:
                break
            cells = [" ".join(cell.split()) for cell in row]
            while cells and not cells[-1]:
                cells.pop()
            if cells:
                lines.append(bounds.take(" | ".join(cells) + "\n").rstrip("\n"))
    except csv.Error as exc:
        raise Unreadable(f"it is not valid CSV (line {reader.line_num:,}: {exc})") from None
    extracted = Extracted("", 0, [Section(0, "", "\n".join(lines))], stopped)
    return require_text(extracted, bounds, "it has no values")


def _delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","
