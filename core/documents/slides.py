"""PowerPoint (PPTX) text with python-pptx: per slide its title, the text of its shapes (groups and tables
included) and its speaker notes, with a marker per slide."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import Any

from core.documents.extracted import Bounds, Extracted, Section, Unreadable, require_text, tidy
from core.documents.formats import DocumentFormat
from core.documents.packages import PackageLimits, check_package


def extract(data: bytes, bounds: Bounds, limits: PackageLimits) -> Extracted:
    check_package(data, DocumentFormat.PPTX, limits)
    from pptx import Presentation

    try:
        slides = list(Presentation(io.BytesIO(data)).slides)
    except Exception as exc:  # python-pptx and lxml raise many kinds for a damaged file
        raise Unreadable("it is damaged or not a PowerPoint presentation") from exc
    extracted = Extracted("slide", len(slides))
    for number, slide in enumerate(slides, 1):
        stopped = bounds.stop(number - 1)
        if stopped is not None:
            extracted.stopped = stopped
            break
        try:
            text = tidy("\n".join(_slide_lines(slide)))
        except Exception as exc:
            raise Unreadable(f"it is damaged (slide {number} could not be read)") from exc
        extracted.sections.append(Section(number, f"--- slide {number} ---", bounds.take(text)))
    return require_text(extracted, bounds, "it has no text" if slides else "it has no slides")


def _slide_lines(slide: Any) -> Iterator[str]:
    title = slide.shapes.title
    if title is not None and title.has_text_frame and title.text_frame.text.strip():
        yield f"# {title.text_frame.text.strip()}"
    others = (shape for shape in slide.shapes if title is None or shape.shape_id != title.shape_id)
    yield from _shape_lines(others)
    if slide.has_notes_slide:
        notes = slide.notes_slide.notes_text_frame
        if notes is not None and notes.text.strip():
            yield f"Notes: {notes.text.strip()}"


def _shape_lines(shapes: Iterable[Any]) -> Iterator[str]:
    for shape in shapes:
        if getattr(shape, "shape_type", None) == _GROUP:
            yield from _shape_lines(shape.shapes)
        elif getattr(shape, "has_table", False) and shape.has_table:
            for row in shape.table.rows:
                cells = [cell.text.replace("\n", " ").strip() for cell in row.cells]
                if any(cells):
                    yield " | ".join(cells)
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            text = shape.text_frame.text.strip()
            if text:
                yield text


_GROUP = 6  # MSO_SHAPE_TYPE.GROUP
