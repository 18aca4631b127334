"""Document files built inside the tests (no binary fixtures): PDFs written by hand (text on each page in
Helvetica), encrypted ones through pypdf, DOCX, PPTX and XLSX through python-docx, python-pptx and openpyxl,
and hostile ones (a zip bomb, damaged bytes)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf_bytes(pages: Sequence[str]) -> bytes:
    """A PDF with one page per item, each line of the item a line of text (an empty item: a page with no
    text, like a scan)."""
    count = len(pages)
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        (
            "<< /Type /Pages /Kids ["
            + " ".join(f"{4 + 2 * i} 0 R" for i in range(count))
            + f"] /Count {count} >>"
        ).encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for index, text in enumerate(pages):
        page, content = 4 + 2 * index, 5 + 2 * index
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content} 0 R "
            "/Resources << /Font << /F1 3 0 R >> >> >>".encode()
        )
        lines = [line for line in text.split("\n")] if text else []
        ops = "".join(
            f"BT /F1 11 Tf 72 {760 - 14 * n} Td ({_escape(line)}) Tj ET\n" for n, line in enumerate(lines)
        ).encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n" % len(ops) + ops + b"endstream")
        assert page == len(objects) - 1
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def pdf_bomb(pages: Sequence[str] = (), unpacked: int = 200 * 1024 * 1024) -> bytes:
    """A small PDF whose last page's content stream (FlateDecode) unpacks to ``unpacked`` bytes of drawing
    operators, after a page of text per item of ``pages``."""
    import zlib

    ops = zlib.compress(b"0 0 m\n" * (unpacked // 6), 9)
    plain = pdf_bytes([*pages, ""])
    # the last page's empty content stream is replaced by the packed one
    empty = b"<< /Length 0 >>\nstream\nendstream"
    assert plain.count(empty) == 1
    body = plain.split(b"xref\n", 1)[0].replace(
        empty, b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(ops) + ops + b"\nendstream"
    )
    return _with_xref(body)


def _with_xref(body: bytes) -> bytes:
    """``body`` (header and objects) with a cross-reference table and trailer computed for it."""
    offsets: list[int] = []
    while (found := body.find(b"\n%d 0 obj\n" % (len(offsets) + 1), offsets[-1] if offsets else 0)) >= 0:
        offsets.append(found + 1)
    out = io.BytesIO()
    out.write(body)
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(offsets) + 1, len(body))
    )
    return out.getvalue()


def encrypted_pdf(pages: Sequence[str], password: str = "s3cret") -> bytes:
    """``pdf_bytes`` encrypted with ``password`` as the user password ("" : opens without one)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(pages))))
    writer.encrypt(user_password=password, owner_password="owner-only", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_bytes(
    pages: Sequence[Sequence[str]], *, heading: str = "", table: Sequence[Sequence[str]] = ()
) -> bytes:
    """A Word document: an optional heading, then each page's paragraphs, a hard page break between pages,
    and an optional table at the end."""
    import docx
    from docx.enum.text import WD_BREAK

    document = docx.Document()
    if heading:
        document.add_heading(heading, level=1)
    for index, paragraphs in enumerate(pages):
        if index:
            document.paragraphs[-1].add_run().add_break(WD_BREAK.PAGE)
        for text in paragraphs:
            document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pptx_bytes(slides: Sequence[tuple[str, str]], notes: Sequence[str] = ()) -> bytes:
    """A presentation: one (title, body) per slide, with optional speaker notes."""
    from pptx import Presentation

    presentation = Presentation()
    layout = presentation.slide_layouts[1]  # title and content
    for index, (title, body) in enumerate(slides):
        slide = presentation.slides.add_slide(layout)
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        if index < len(notes):
            slide.notes_slide.notes_text_frame.text = notes[index]
    out = io.BytesIO()
    presentation.save(out)
    return out.getvalue()


def xlsx_bytes(sheets: dict[str, Sequence[Sequence[object]]]) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(list(row))
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def zip_bomb(member: str = "word/document.xml", unpacked: int = 120 * 1024 * 1024) -> bytes:
    """A small zip (a DOCX by its name) with a member that unpacks to ``unpacked`` bytes of zeros; the
    members a Word file needs are there, so only the sizes give it away."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        info = zipfile.ZipInfo(member)
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as handle:
            block = bytes(1024 * 1024)
            for _ in range(unpacked // len(block)):
                handle.write(block)
    return out.getvalue()
