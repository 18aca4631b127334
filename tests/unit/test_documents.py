"""Attached documents read as text (core/documents): page, slide and sheet markers, the token allowance
counted exactly, and every file that cannot be read named with the reason, never an exception. The files are
built here (tests/documents.py)."""

from __future__ import annotations

import io
import zipfile

import pytest

from core.documents.formats import DocumentFormat, document_format, legacy_hint
from core.documents.reader import DocumentLimits, DocumentReader, DocumentResult
from core.llm.tokens import TokenCounter
from tests.documents import docx_bytes, encrypted_pdf, pdf_bytes, pptx_bytes, xlsx_bytes, zip_bomb

MODEL = "gpt-4o-mini"


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter()


def read(
    counter: TokenCounter, name: str, data: bytes, kind: DocumentFormat | None = None, **limits: object
) -> DocumentResult:
    kind = kind or document_format(name, "")
    assert kind is not None
    reader = DocumentReader(counter, DocumentLimits(**limits), default_model=MODEL)  # type: ignore[arg-type]
    return reader.read_now(name, kind, data, MODEL)


def text_of(result: DocumentResult) -> str:
    assert result.attachment is not None, result.problem
    assert result.attachment.mime == "text/plain" and result.attachment.name
    return result.attachment.data.decode("utf-8")


def test_the_format_follows_the_extension_then_the_mime_type() -> None:
    assert document_format("Q3 report.PDF", "application/octet-stream") is DocumentFormat.PDF
    assert document_format("scan", "application/pdf") is DocumentFormat.PDF
    assert document_format("notes.md", "text/plain") is DocumentFormat.MARKDOWN
    assert document_format("data.tsv", "") is DocumentFormat.CSV
    assert document_format("page", "text/html; charset=utf-8") is DocumentFormat.HTML
    assert document_format("main.py", "text/x-python") is None
    assert document_format("photo.png", "image/png") is None
    assert "old Word files (.doc)" in (legacy_hint("memo.doc") or "")


def test_a_pdf_is_read_page_by_page_with_a_marker_per_page(counter: TokenCounter) -> None:
    result = read(counter, "report.pdf", pdf_bytes(["Revenue rose 12%\nin the third quarter", "Costs fell"]))
    text = text_of(result)
    assert text == "--- page 1 ---\nRevenue rose 12%\nin the third quarter\n\n--- page 2 ---\nCosts fell"
    assert result.problem is None and result.partial is None


def test_a_word_document_keeps_its_headings_tables_and_page_breaks(counter: TokenCounter) -> None:
    data = docx_bytes(
        [["The plan is approved."], ["Budget follows."]],
        heading="Board minutes",
        table=[["Item", "Cost"], ["Chairs", "400"]],
    )
    text = text_of(read(counter, "minutes.docx", data))
    assert text == (
        "--- page 1 ---\n# Board minutes\nThe plan is approved.\n\n"
        "--- page 2 ---\nBudget follows.\nItem | Cost\nChairs | 400"
    )


def test_a_presentation_has_a_marker_per_slide_with_titles_and_notes(counter: TokenCounter) -> None:
    data = pptx_bytes([("Roadmap", "Ship v2 in May"), ("Risks", "Hiring\nVendors")], notes=["Speak slowly"])
    text = text_of(read(counter, "deck.pptx", data))
    assert text == (
        "--- slide 1 ---\n# Roadmap\nShip v2 in May\nNotes: Speak slowly\n\n"
        "--- slide 2 ---\n# Risks\nHiring\nVendors"
    )


def test_a_workbook_has_a_marker_per_sheet_naming_it(counter: TokenCounter) -> None:
    data = xlsx_bytes({"Q1": [["Region", "Sales"], ["North", 1200.0], ["South", 950.5]], "Q2": [["East", 7]]})
    text = text_of(read(counter, "sales.xlsx", data))
    assert text == (
        '--- sheet 1 "Q1" ---\nRegion | Sales\nNorth | 1200\nSouth | 950.5\n\n--- sheet 2 "Q2" ---\nEast | 7'
    )


def test_csv_html_and_markdown_are_read_as_text(counter: TokenCounter) -> None:
    csv = text_of(read(counter, "people.csv", b'name;city\n"Smith; J.";Porto\nAda;Lisbon\n'))
    assert csv == "name | city\nSmith; J. | Porto\nAda | Lisbon"
    page = (
        b"<html><head><title>Guide</title><style>p{color:red}</style><script>alert(1)</script></head>"
        b"<body><h2>Setup</h2><p>Run <b>make</b>.</p><ul><li>one</li><li>two</li></ul>"
        b"<table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td>1</td></tr></table></body></html>"
    )
    html = text_of(read(counter, "guide.html", page))
    assert html == "# Guide\n\n## Setup\n\nRun make.\n\n- one\n- two\n\nk | v\na | 1"
    assert "alert" not in html and "color" not in html
    assert text_of(read(counter, "notes.md", b"# Notes\n\n- keep `code`\n")) == "# Notes\n\n- keep `code`"


def test_text_over_the_allowance_is_cut_to_it_exactly_with_a_note(counter: TokenCounter) -> None:
    pages = [f"Page {n}: " + "the quarterly numbers look fine " * 12 for n in range(1, 41)]
    result = read(counter, "long.pdf", pdf_bytes(pages), max_tokens=300)
    text = text_of(result)
    assert counter.count_text(MODEL, text) <= 300
    assert counter.count_text(MODEL, text) > 280  # the allowance is used, not wasted
    assert text.startswith("--- page 1 ---\nPage 1:")
    last = max(n for n in range(1, 41) if f"--- page {n} ---" in text)
    assert 1 < last < 40
    assert result.partial == (
        f"up to page {last} of 40; the rest is over the 300-token allowance for one file"
    )
    assert text.endswith("[long.pdf is cut here: the rest is over the 300-token allowance for one file.]")


def test_pages_past_the_cap_are_not_read(counter: TokenCounter) -> None:
    result = read(counter, "many.pdf", pdf_bytes([f"page {n}" for n in range(1, 11)]), max_pages=3)
    text = text_of(result)
    assert "--- page 3 ---" in text and "--- page 4 ---" not in text
    assert result.partial == "up to page 3 of 10; at most 3 pages of a file are read"


def test_out_of_time_before_anything_is_read_says_so(counter: TokenCounter) -> None:
    result = read(counter, "slow.pdf", pdf_bytes(["text"]), max_seconds=0)
    assert result.attachment is None and result.problem == "reading it took longer than 0 seconds"


def test_an_encrypted_pdf_is_named_as_such_unless_it_opens_without_a_password(counter: TokenCounter) -> None:
    locked = read(counter, "secret.pdf", encrypted_pdf(["classified"]))
    assert locked.attachment is None and locked.problem == "it is encrypted (password-protected)"
    restricted = read(counter, "restricted.pdf", encrypted_pdf(["open to read"], password=""))
    assert text_of(restricted) == "--- page 1 ---\nopen to read"


def test_a_pdf_without_a_text_layer_gets_a_note(counter: TokenCounter) -> None:
    result = read(counter, "scan.pdf", pdf_bytes(["", ""]))
    assert result.attachment is None
    assert result.problem == "its pages hold no text (a scan?); I can read only PDFs that have a text layer"


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("broken.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<", "it is damaged or not a PDF"),
        ("fake.pdf", b"<html>not a pdf</html>", "it is not a PDF (its contents don't start like one)"),
        ("broken.docx", b"PK\x03\x04 truncated", "it is damaged or not a Word document"),
        ("broken.pptx", b"\x00\x01garbage", "it is damaged or not a PowerPoint presentation"),
        ("broken.xlsx", b"", "it is damaged or not an Excel workbook"),
        (
            "locked.docx",
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512),
            "it is password-protected (or an old-format Office file); save it without a password and in "
            "the current format",
        ),
        ("binary.csv", b"a,b\x00c", "it is not a text file"),
    ],
)
def test_a_damaged_file_gets_a_clear_reason(
    counter: TokenCounter, name: str, data: bytes, problem: str
) -> None:
    result = read(counter, name, data)
    assert result.attachment is None and result.problem == problem


def test_a_zip_without_the_documents_part_is_not_that_document(counter: TokenCounter) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("hello.txt", "hi")
    result = read(counter, "renamed.xlsx", out.getvalue())
    assert result.problem == "it is damaged or not an Excel workbook"


def test_a_decompression_bomb_is_refused_before_it_unpacks(counter: TokenCounter) -> None:
    huge = read(counter, "bomb.docx", zip_bomb(unpacked=120 * 1024 * 1024))
    assert huge.attachment is None
    assert huge.problem == "it unpacks to 120.0 MB; files that unpack to at most 50.0 MB are read"
    dense = read(counter, "dense.docx", zip_bomb(unpacked=20 * 1024 * 1024))  # under the total, not the ratio
    assert dense.attachment is None and dense.problem is not None
    assert dense.problem.startswith("one of its parts unpacks to 20.0 MB from ")
    assert dense.problem.endswith("which looks like a decompression bomb")


async def test_reading_runs_in_a_worker_thread_and_counts_for_the_conversations_model(
    counter: TokenCounter,
) -> None:
    import threading

    from core.domain.types import ConversationKey

    asked: list[ConversationKey] = []
    threads: list[str] = []

    async def model_of(key: ConversationKey) -> str:
        asked.append(key)
        return "gpt-4"  # cl100k_base: counted with that model's tokens

    class Spy(DocumentReader):
        def read_now(self, name: str, kind: DocumentFormat, data: bytes, model: str) -> DocumentResult:
            threads.append(threading.current_thread().name)
            assert model == "gpt-4"
            return super().read_now(name, kind, data, model)

    reader = Spy(counter, DocumentLimits(max_tokens=100), default_model=MODEL, model_of=model_of)
    key = ConversationKey("slack", "T1", "C1", "1.0")
    pages = ["words and more words " * 30] * 3
    result = await reader.read("r.pdf", DocumentFormat.PDF, pdf_bytes(pages), key)
    assert asked == [key] and threads and threads[0] != threading.main_thread().name
    assert counter.count_text("gpt-4", text_of(result)) <= 100 < counter.count_text("gpt-4", "\n".join(pages))


def test_a_pdf_page_that_unpacks_past_the_limit_is_not_unpacked(counter: TokenCounter) -> None:
    """A 300 KB PDF whose page unpacks to 200 MB: pypdf stops at the 16 MB limit (never the whole of it);
    the pages that read are kept, the bomb page is marked, and a file of nothing but bomb pages is named."""
    from tests.documents import pdf_bomb

    mixed = read(counter, "mixed.pdf", pdf_bomb(["Intro page"]))
    assert text_of(mixed) == "--- page 1 ---\nIntro page\n\n--- page 2 ---\n(this page could not be read)"
    only = read(counter, "bomb.pdf", pdf_bomb())
    assert only.attachment is None
    assert only.problem == "its pages unpack to more than 16 MB each, which looks like a decompression bomb"
