"""Which document format a file is, by its MIME type and its name's extension (the dispatcher).

The bytes are checked by each parser (a PDF must start like one, a DOCX must be a zip holding a Word
document); this only decides which parser gets them, so an adapter can tell a document from an image or a
text file before it downloads it.
"""

from __future__ import annotations

from enum import StrEnum


class DocumentFormat(StrEnum):
    PDF = "pdf"
    DOCX = "docx"
    PPTX = "pptx"
    XLSX = "xlsx"
    CSV = "csv"
    HTML = "html"
    MARKDOWN = "markdown"

    @property
    def label(self) -> str:
        """How the format is named to a user: "a PDF", "a Word document"."""
        return _LABELS[self]


_LABELS = {
    DocumentFormat.PDF: "a PDF",
    DocumentFormat.DOCX: "a Word document",
    DocumentFormat.PPTX: "a PowerPoint presentation",
    DocumentFormat.XLSX: "an Excel workbook",
    DocumentFormat.CSV: "a CSV file",
    DocumentFormat.HTML: "an HTML page",
    DocumentFormat.MARKDOWN: "a Markdown file",
}

BY_EXTENSION = {
    "pdf": DocumentFormat.PDF,
    "docx": DocumentFormat.DOCX,
    "pptx": DocumentFormat.PPTX,
    "xlsx": DocumentFormat.XLSX,
    "xlsm": DocumentFormat.XLSX,
    "csv": DocumentFormat.CSV,
    "tsv": DocumentFormat.CSV,
    "html": DocumentFormat.HTML,
    "htm": DocumentFormat.HTML,
    "xhtml": DocumentFormat.HTML,
    "md": DocumentFormat.MARKDOWN,
    "markdown": DocumentFormat.MARKDOWN,
}

BY_MIME = {
    "application/pdf": DocumentFormat.PDF,
    "application/x-pdf": DocumentFormat.PDF,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": DocumentFormat.DOCX,
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": DocumentFormat.PPTX,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": DocumentFormat.XLSX,
    "application/vnd.ms-excel.sheet.macroenabled.12": DocumentFormat.XLSX,
    "text/csv": DocumentFormat.CSV,
    "application/csv": DocumentFormat.CSV,
    "text/tab-separated-values": DocumentFormat.CSV,
    "text/html": DocumentFormat.HTML,
    "application/xhtml+xml": DocumentFormat.HTML,
    "text/markdown": DocumentFormat.MARKDOWN,
    "text/x-markdown": DocumentFormat.MARKDOWN,
}

# Old binary Office formats: no well-kept pure-Python parser reads them; the user is told to convert.
LEGACY = {"doc": "Word", "xls": "Excel", "ppt": "PowerPoint"}


def extension(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def document_format(name: str, mime: str) -> DocumentFormat | None:
    """The format of a file named ``name`` that its platform calls ``mime``; None: not a document read here.
    A known extension wins (platforms often say ``application/octet-stream``), then the MIME type."""
    known = BY_EXTENSION.get(extension(name))
    if known is not None:
        return known
    return BY_MIME.get(mime.split(";")[0].strip().lower())


def legacy_hint(name: str) -> str | None:
    """Why an old binary Office file (.doc, .xls, .ppt) is not read, or None for any other file."""
    kind = LEGACY.get(extension(name))
    if kind is None:
        return None
    return f"old {kind} files (.{extension(name)}) can't be read; save it in the newer format or as PDF"
