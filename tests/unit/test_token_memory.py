"""What the token tables cost in memory (issue 14): an encoding keeps its native tables only, not tiktoken's
Python copy of the ranks (about 27 MB resident for o200k_base), and still counts exactly as tiktoken does.
Measured with tracemalloc in a fresh interpreter, since a process loads an encoding once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

MB = 1024 * 1024

SCRIPT = textwrap.dedent(
    """\
    import json, sys, tracemalloc
    import tiktoken
    from core.llm.tokens import load_encoding

    text = "Grüße, 世界! def f(x): return x ** 2  # 🙂 " * 50
    tracemalloc.start()
    if sys.argv[1] == "ours":
        encoding = load_encoding("o200k_base")
    else:
        encoding = tiktoken.get_encoding("o200k_base")
    kept = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    tokens = encoding.encode(text, disallowed_special=())
    print(json.dumps({"kept": kept, "tokens": tokens, "decoded": encoding.decode(tokens) == text}))
    """
)


def run(which: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, which],
        env=dict(os.environ),
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found: dict[str, object] = json.loads(result.stdout)
    return found


def test_an_encoding_keeps_no_python_copy_of_its_ranks_and_counts_the_same(tiktoken_cache: str) -> None:
    ours, theirs = run("ours"), run("tiktoken")
    assert isinstance(theirs["kept"], int) and theirs["kept"] > 20 * MB  # what tiktoken's own keeps
    assert isinstance(ours["kept"], int) and ours["kept"] < 2 * MB
    assert ours["tokens"] == theirs["tokens"] and ours["decoded"] is True
