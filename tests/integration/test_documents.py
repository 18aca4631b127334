"""Documents attached on Slack and Discord reach the model as text with their page, slide and sheet markers,
redacted and moderated like the message; files that cannot be read (encrypted, damaged, decompression bombs)
are named in the thread with the reason; a large document is parsed while the event loop stays free. The
files are built inside the tests (tests/documents.py); everything runs through the real SDKs against the
wire fakes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.llm.tokens import TokenCounter
from tests.documents import docx_bytes, encrypted_pdf, pdf_bomb, pdf_bytes, pptx_bytes, xlsx_bytes, zip_bomb
from tests.fakes.openai_api import FakeOpenAI, Reply
from tests.fakes.slack_api import BOT_USER_ID
from tests.integration.discord_harness import running_bot
from tests.integration.test_slack_adapter import chat_messages, running_slack
from tests.loop_probe import LoopProbe

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def user_text(message: dict[str, Any]) -> str:
    content = message["content"]
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content)


def moderated_texts(openai: FakeOpenAI) -> list[str]:
    texts = []
    for request in openai.requests:
        if request.path.endswith("/moderations"):
            for part in request.json["input"]:
                texts.append(part if isinstance(part, str) else part.get("text", ""))
    return texts


async def test_a_pdf_and_a_docx_on_slack_reach_the_model_with_page_markers_and_bad_files_get_a_note(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    report = pdf_bytes(["Q3 revenue: 4.2M\nContact: ada@example.com", "Q4 outlook: flat"])
    minutes = docx_bytes([["Decision: ship in May."], ["Owner: Grace."]], heading="Minutes")
    async with running_slack(tmp_path, fake_openai) as slack:
        fake = slack.fake
        files = [
            fake.add_file("report.pdf", report, PDF, "pdf"),
            fake.add_file("minutes.docx", minutes, DOCX, "docx"),
            fake.add_file("locked.pdf", encrypted_pdf(["top secret"]), PDF, "pdf"),
            fake.add_file("broken.docx", b"PK\x03\x04 not really a document", DOCX, "docx"),
        ]
        fake_openai.script(Reply(text="Revenue was 4.2M; ship in May."))
        event = await slack.message(f"<@{BOT_USER_ID}> summarise these", files=files)

        [user] = [m for m in chat_messages(fake_openai) if m["role"] == "user"]
        sent = user_text(user)
        assert sent.startswith("summarise these")
        assert (
            "--- page 1 ---\nQ3 revenue: 4.2M\nContact: [REDACTED:email]\n\n--- page 2 ---\nQ4 outlook: flat"
            in sent
        )
        assert "--- page 1 ---\n# Minutes\nDecision: ship in May.\n\n--- page 2 ---\nOwner: Grace." in sent
        assert "ada@example.com" not in sent and "top secret" not in sent
        assert any(
            "Q4 outlook: flat" in text and "Owner: Grace." in text for text in moderated_texts(fake_openai)
        )

        notice, answer = fake.bot_messages(thread_ts=event["ts"])
        assert "*locked.pdf* (it is encrypted (password-protected))" in notice.current
        assert "*broken.docx* (it is damaged or not a Word document)" in notice.current
        assert "report.pdf" not in notice.current and "minutes.docx" not in notice.current
        assert "not supported" not in notice.current
        assert answer.current == "Revenue was 4.2M; ship in May."

        # The document is part of the stored user message: the next turn's history replays it.
        fake_openai.script(Reply(text="Grace."))
        await slack.message("who owns it?", thread_ts=event["ts"])
        history = [user_text(m) for m in chat_messages(fake_openai) if m["role"] == "user"]
        assert len(history) == 2 and "Owner: Grace." in history[0] and history[1] == "who owns it?"


async def test_a_document_over_the_allowance_is_cut_exactly_and_the_user_is_told(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    pages = [f"Section {n}. " + "The committee reviewed the figures again. " * 10 for n in range(1, 31)]
    async with running_slack(tmp_path, fake_openai, document_max_tokens="400") as slack:
        files = [slack.fake.add_file("long.pdf", pdf_bytes(pages), PDF, "pdf")]
        fake_openai.script(Reply(text="It is long."))
        event = await slack.message(f"<@{BOT_USER_ID}> read this", files=files)

        sent = user_text(next(m for m in chat_messages(fake_openai) if m["role"] == "user"))
        document = sent.split("Attached file long.pdf:\n```\n", 1)[1].rsplit("\n```", 1)[0]
        assert TokenCounter().count_text("gpt-4o-mini", document) <= 400
        assert document.endswith(
            "[long.pdf is cut here: the rest is over the 400-token allowance for one file.]"
        )
        last = max(n for n in range(1, 31) if f"--- page {n} ---" in document)
        notice, _ = slack.fake.bot_messages(thread_ts=event["ts"])
        assert notice.current == (
            f":information_source: I read only part of *long.pdf* (up to page {last} of 30; the rest is over "
            "the 400-token allowance for one file)."
        )


async def test_a_blocked_document_never_reaches_the_model(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.moderation_flags = {"attack the convoy at dawn": {"violence": 0.95}}
    async with running_slack(tmp_path, fake_openai) as slack:
        plan = docx_bytes([["Logistics."], ["Attack the convoy at dawn."]])
        files = [slack.fake.add_file("plan.docx", plan, DOCX, "docx")]
        event = await slack.message(f"<@{BOT_USER_ID}> is this ok?", files=files)
        assert fake_openai.chat_requests() == []
        [reply] = slack.fake.bot_messages(thread_ts=event["ts"])
        assert "(violence)" in reply.current and "convoy" not in reply.current


async def test_a_decompression_bomb_is_named_and_the_question_still_answered(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_slack(tmp_path, fake_openai) as slack:
        files = [
            slack.fake.add_file("huge.docx", zip_bomb(), DOCX, "docx"),
            slack.fake.add_file("huge.pdf", pdf_bomb(), PDF, "pdf"),
        ]
        fake_openai.script(Reply(text="I could not open the file."))
        event = await slack.message(f"<@{BOT_USER_ID}> what is in it?", files=files)
        notice, answer = slack.fake.bot_messages(thread_ts=event["ts"])
        assert "*huge.docx* (it unpacks to 120.0 MB; files that unpack to at most 50.0 MB are read)" in (
            notice.current
        )
        assert (
            "*huge.pdf* (its pages unpack to more than 16 MB each, which looks like a decompression bomb)"
            in notice.current
        )
        assert user_text(chat_messages(fake_openai)[-1]) == "what is in it?"
        assert answer.current == "I could not open the file."


async def test_documents_on_discord_reach_the_model_with_slide_and_sheet_markers(tmp_path: Path) -> None:
    deck = pptx_bytes([("Plan", "Hire two engineers"), ("Budget", "See the sheet")], notes=["Ask for more"])
    sheet = xlsx_bytes({"Q1": [["Team", "Cost"], ["Web", 12000.0]], "Q2": [["Web", 13000.0]]})
    async with running_bot(tmp_path) as bot:
        fake = bot.discord
        dm = fake.dm_channel(fake.owner)
        bot.openai.script(Reply("Two engineers, 25k."))
        await fake.message_create(
            dm,
            "what do these say?",
            files=[
                ("plan.pptx", PPTX, deck),
                ("costs.xlsx", XLSX, sheet),
                ("scan.pdf", PDF, pdf_bytes(["", ""])),
                ("old.doc", "application/msword", b"\xd0\xcf\x11\xe0"),
            ],
        )
        [reply] = await fake.wait_for(lambda: fake.bot_messages(dm))
        sent = user_text(bot.openai.chat_requests()[-1]["messages"][-1])
        assert (
            "--- slide 1 ---\n# Plan\nHire two engineers\nNotes: Ask for more\n\n--- slide 2 ---\n# Budget"
            in sent
        )
        assert '--- sheet 1 "Q1" ---\nTeam | Cost\nWeb | 12000\n\n--- sheet 2 "Q2" ---\nWeb | 13000' in sent
        assert reply.content.startswith("Two engineers, 25k.")
        assert "I couldn't read scan.pdf: its pages hold no text (a scan?)" in reply.content
        assert "I can't read old.doc: old Word files (.doc) can't be read" in reply.content


async def test_a_large_document_is_parsed_while_the_event_loop_stays_free(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """300 pages of short lines: seconds of pypdf work, all of it in a worker thread. A ticker on the loop
    measures the longest stretch the loop was held; parsing on the loop would hold it for all of them."""
    lines = "\n".join(f"r{n}" for n in range(30))
    big = pdf_bytes([f"Page {page}\n{lines}" for page in range(1, 301)])
    fake_openai.script(Reply(text="That is a long report."))
    async with running_slack(tmp_path, fake_openai, document_max_tokens="100000") as slack:
        files = [slack.fake.add_file("big.pdf", big, PDF, "pdf")]
        async with LoopProbe() as probe:
            await slack.message(f"<@{BOT_USER_ID}> summarise", files=files)
        sent = user_text(chat_messages(fake_openai)[-1])
        assert "--- page 300 ---\nPage 300\nr0" in sent and "cut here" not in sent  # all of it was read
        # Parsing on the loop holds it for seconds (4.2 s of a 5.2 s turn measured here); off the loop, the
        # loop's own thread spends milliseconds between two ticks.
        assert probe.cpu < 0.25, probe


async def test_presentations_workbooks_csv_html_and_markdown_on_slack_reach_the_model_with_their_markers(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """Each format through Slack's file download path; a PDF whose name has no extension and whose MIME type
    is generic is still read (Slack's filetype says pdf), and an XLSX decompression bomb is refused by its
    declared sizes, named in the thread, while the other files of the message are read."""
    deck = pptx_bytes([("Roadmap", "Ship v2 in May"), ("Risks", "Hiring")], notes=["Speak slowly"])
    sheet = xlsx_bytes({"Q1": [["Team", "Cost"], ["Web", 12000.0]], "Q2": [["Web", 13000.0]]})
    page = (
        b"<html><head><title>Guide</title><script>alert(1)</script></head>"
        b"<body><h2>Setup</h2><p>Run make.</p>"
    )
    async with running_slack(tmp_path, fake_openai) as slack:
        fake = slack.fake
        first = [
            fake.add_file("plan.pptx", deck, PPTX, "pptx"),
            fake.add_file("costs.xlsx", sheet, XLSX, "xlsx"),
            fake.add_file("bomb.xlsx", zip_bomb("xl/worksheets/sheet1.xml"), XLSX, "xlsx"),
            fake.add_file(
                "scan0001", pdf_bytes(["Invoice 7", "Total: 90 EUR"]), "application/octet-stream", "pdf"
            ),
        ]
        second = [
            fake.add_file("people.csv", b"name,city\nAda,Lisbon\n", "text/csv", "csv"),
            fake.add_file("guide.html", page, "text/html", "html"),
            fake.add_file("notes.md", b"# Notes\n\n- keep `code`\n", "text/plain", "markdown"),
        ]
        fake_openai.script(Reply(text="Read them."), Reply(text="Read these too."))
        event = await slack.message(f"<@{BOT_USER_ID}> what do these say?", files=first)
        await slack.message("and these?", thread_ts=event["ts"], files=second)

        one, two = (user_text(r["messages"][-1]) for r in fake_openai.chat_requests())
        assert (
            "--- slide 1 ---\n# Roadmap\nShip v2 in May\nNotes: Speak slowly\n\n"
            "--- slide 2 ---\n# Risks\nHiring" in one
        )
        assert '--- sheet 1 "Q1" ---\nTeam | Cost\nWeb | 12000\n\n--- sheet 2 "Q2" ---\nWeb | 13000' in one
        assert "--- page 1 ---\nInvoice 7\n\n--- page 2 ---\nTotal: 90 EUR" in one
        assert "name | city\nAda | Lisbon" in two
        assert "# Guide\n\n## Setup\n\nRun make." in two and "alert" not in two
        assert "# Notes\n\n- keep `code`" in two

        notice, answer, _ = fake.bot_messages(thread_ts=event["ts"])
        assert notice.current == (
            ":information_source: I couldn't read *bomb.xlsx* (it unpacks to 120.0 MB; files that unpack to "
            "at most 50.0 MB are read)."
        )
        assert answer.current == "Read them."
