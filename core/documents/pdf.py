"""PDF text, page by page, with pypdf.

Its decoders are held to tighter limits than pypdf's defaults (each stream unpacks to at most 16 MB), an
encrypted file is opened only when it opens with an empty password (a file that only restricts printing or
copying), and at most ``max_pages`` pages are read. A page that cannot be read is marked as such and the
next one is read. A PDF whose pages hold no text (a scan) is reported as such: page images are not sent to
the model (that needs a PDF renderer, which pure Python lacks, and costs image tokens per page).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator

from core.documents.extracted import Bounds, Extracted, Section, Unreadable, require_text, tidy

log = logging.getLogger(__name__)

STREAM_LIMIT = 16 * 1024 * 1024
HEADER_WITHIN = 1024  # the PDF header may follow a little junk (the spec allows 1,024 bytes)
UNREADABLE_PAGE = "(this page could not be read)"


def extract(data: bytes, bounds: Bounds) -> Extracted:
    from pypdf import PasswordType, PdfReader
    from pypdf.errors import DependencyError, LimitReachedError, PyPdfError

    if b"%PDF-" not in data[:HEADER_WITHIN]:
        raise Unreadable("it is not a PDF (its contents don't start like one)")
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # a damaged file's warnings tell operators nothing
    with _tight_limits():
        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted:
                try:
                    opened = reader.decrypt("")
                except (DependencyError, NotImplementedError, PyPdfError):
                    opened = PasswordType.NOT_DECRYPTED
                if opened == PasswordType.NOT_DECRYPTED:
                    raise Unreadable("it is encrypted (password-protected)")
            pages = reader.pages
            total = len(pages)
        except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise Unreadable("it is damaged or not a PDF") from exc
        extracted = Extracted("page", total)
        empty, failed, bombs = True, 0, 0
        for index in range(total):
            stopped = bounds.stop(index)
            if stopped is not None:
                extracted.stopped = stopped
                break
            try:
                text = tidy(pages[index].extract_text() or "")
            except LimitReachedError:  # a stream that unpacks past STREAM_LIMIT: stopped there, not unpacked
                log.info("PDF page %d unpacks past the %d-byte limit", index + 1, STREAM_LIMIT)
                text, failed, bombs = UNREADABLE_PAGE, failed + 1, bombs + 1
            except Exception as exc:  # one damaged page (or one over the limits) does not lose the others
                log.info("PDF page %d could not be read: %s: %s", index + 1, type(exc).__name__, exc)
                text, failed = UNREADABLE_PAGE, failed + 1
            else:
                empty = empty and not text
            number = index + 1
            extracted.sections.append(Section(number, f"--- page {number} ---", bounds.take(text)))
    if not extracted.sections:
        return require_text(extracted, bounds, "it has no pages")
    if failed == len(extracted.sections):
        if bombs:
            raise Unreadable(
                f"its pages unpack to more than {STREAM_LIMIT // (1024 * 1024)} MB each, which looks like a "
                "decompression bomb"
            )
        raise Unreadable("it is damaged (none of its pages could be read)")
    if empty:
        read = len(extracted.sections)
        scope = "its pages hold" if read == total else f"its first {read:,} pages hold"
        raise Unreadable(f"{scope} no text (a scan?); I can read only PDFs that have a text layer")
    return extracted


@contextlib.contextmanager
def _tight_limits() -> Iterator[None]:
    """pypdf's decoding limits, tightened for this thread's reads only (pypdf keeps them in a ContextVar)."""
    from pypdf import apply_configuration

    with apply_configuration(
        maximum_declared_stream_length=STREAM_LIMIT,
        array_based_stream_maximum_output_length=STREAM_LIMIT,
        zlib_maximum_output_length=STREAM_LIMIT,
        lzw_maximum_output_length=STREAM_LIMIT,
        run_length_maximum_output_length=STREAM_LIMIT,
        jbig2_maximum_output_length=STREAM_LIMIT,
        brotli_maximum_output_length=STREAM_LIMIT,
        image_maximum_buffer_size=STREAM_LIMIT,
        jbig2dec_binary=None,  # never run an external program
    ):
        yield
