"""Documents people attach (PDF, Word, PowerPoint, Excel, CSV, HTML, Markdown) read as text for the model.

    formats.py       which format a file is, by MIME type and file name extension (the dispatcher)
    extracted.py     what a parser returns (one section per page, slide or sheet), the bounds it reads within
                     (characters collected, pages, a deadline); ``Unreadable``: why a file cannot be read
    packages.py      zip-based formats (DOCX, PPTX, XLSX) checked before anything unpacks them
    pdf.py, word.py, slides.py, spreadsheet.py, delimited.py, webpage.py, markdown_text.py
                     one parser per format, each a plain function over bytes, run in a worker thread
    reader.py        DocumentReader: the parsers off the event loop (a few at a time), the text cut to the
                     token allowance of one file, and the notes the user sees

Nothing here imports a chat SDK; the parsing libraries are imported only when a file of theirs is read.
"""
