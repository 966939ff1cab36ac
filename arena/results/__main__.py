"""`python -m arena.results schema [PATH]`: export the result JSON Schema (stdout, or a file)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from arena.results.schema import SCHEMA_VERSION, json_schema


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "schema" or len(argv) > 2:
        print("usage: python -m arena.results schema [PATH]", file=sys.stderr)
        return 2
    text = json.dumps(json_schema(), indent=2) + "\n"
    if len(argv) == 2:
        Path(argv[1]).write_text(text)
        print(f"wrote result schema v{SCHEMA_VERSION} to {argv[1]}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
