"""Excel (XLSX) values with openpyxl, streamed row by row (read-only mode), with a marker per sheet.

Formulas show the value Excel saved with them. Rows are lines with cells joined by `` | ``; empty rows are
left out, and at most ``MAX_COLUMNS`` columns of a row are read. The size a sheet declares is ignored, so a
sheet that claims a million empty rows costs nothing.
"""

from __future__ import annotations

import datetime
import io
import warnings
from collections.abc import Iterable
from typing import Any

from core.documents.extracted import Bounds, Extracted, Section, Stop, Unreadable, require_text
from core.documents.formats import DocumentFormat
from core.documents.packages import PackageLimits, check_package

MAX_COLUMNS = 200
ROWS_BETWEEN_CHECKS = 256


def extract(data: bytes, bounds: Bounds, limits: PackageLimits) -> Extracted:
    check_package(data, DocumentFormat.XLSX, limits)
    from openpyxl import load_workbook

    warnings.filterwarnings("ignore", category=UserWarning, module="openpyxl")  # style quirks, harmless
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise Unreadable("it is damaged or not an Excel workbook") from exc
    try:
        sheets = list(workbook.worksheets)
        extracted = Extracted("sheet", len(sheets))
        for number, sheet in enumerate(sheets, 1):
            stopped = bounds.stop()
            if stopped is not None:
                extracted.stopped = stopped
                break
            marker = f'--- sheet {number} "{sheet.title}" ---'
            try:
                text, stopped = _rows(sheet, bounds)
            except Exception as exc:
                raise Unreadable(f'it is damaged (sheet "{sheet.title}" could not be read)') from exc
            extracted.sections.append(Section(number, marker, text))
            if stopped is not None:
                extracted.stopped = stopped
                break
    finally:
        workbook.close()
    return require_text(extracted, bounds, "it has no cells with values" if sheets else "it has no sheets")


def _rows(sheet: Any, bounds: Bounds) -> tuple[str, Stop | None]:
    sheet.reset_dimensions()  # never trust the declared size (it pads every row to it)
    lines: list[str] = []
    for index, row in enumerate(sheet.iter_rows(max_col=MAX_COLUMNS, values_only=True)):
        if bounds.chars >= bounds.max_chars:
            return "\n".join(lines), Stop.FULL
        if index % ROWS_BETWEEN_CHECKS == 0:
            stopped = bounds.stop()
            if stopped is not None:
                return "\n".join(lines), stopped
        cells = _cells(row)
        if cells:
            lines.append(bounds.take(" | ".join(cells) + "\n").rstrip("\n"))
    return "\n".join(lines), None


def _cells(row: Iterable[Any]) -> list[str]:
    cells = [_value(value) for value in row]
    while cells and not cells[-1]:
        cells.pop()
    return cells


def _value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime.datetime) and value.time() == datetime.time():
        return value.date().isoformat()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return " ".join(str(value).split())
