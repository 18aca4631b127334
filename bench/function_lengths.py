"""Function lengths of a source tree (every def, first line to last): count, median, p90, the longest.

python bench/function_lengths.py core/turn [--top 5]
"""

from __future__ import annotations

import argparse
import ast
import statistics
from pathlib import Path


def lengths(root: Path) -> list[tuple[int, str]]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                found.append((node.end_lineno - node.lineno + 1, f"{path}:{node.lineno} {node.name}"))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--top", type=int, default=5, help="how many of the longest to list")
    args = parser.parse_args()
    found = lengths(args.root)
    sizes = sorted(size for size, _ in found)
    p90 = sizes[int(len(sizes) * 0.9)]
    median = statistics.median(sizes)
    print(f"{args.root}: {len(sizes)} functions, median {median}, p90 {p90}, max {sizes[-1]}")
    for size, where in sorted(found, reverse=True)[: args.top]:
        print(f"  {size:4d} {where}")


if __name__ == "__main__":
    main()
