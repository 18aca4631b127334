"""The buttons under an answer, platform-neutral: feedback (👍/👎), Stop while it streams, Retry on the
last one. ``buttons.py`` is what adapters call (``AnswerButtons``); ``stops.py`` the running turns a Stop
reaches, on this replica or, through PostgreSQL's LISTEN/NOTIFY, on another; ``feedback.py`` the votes and
their report."""
