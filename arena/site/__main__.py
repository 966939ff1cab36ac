"""`python -m arena.site [RESULTS_DIR ...] [--docs site] [--specs specs/models]`: results → site pages.

Reads every result under the folders (default: results/), writes the generated pages, charts and
downloads into the docs folder (default: site/), and prints what it wrote. Then `mkdocs build --strict`
turns the docs folder into the static site. An invalid result file stops it, naming the file.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from arena.errors import ArenaError
from arena.site.build import generate
from arena.specs import DEFAULT_SPECS_DIR


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m arena.site", description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("results", nargs="*", type=Path, default=[Path("results")], help="results folders, from any number of machines (default: results)")
    parser.add_argument("--docs", type=Path, default=Path("site"), help="the mkdocs docs folder to write into (default: site)")
    parser.add_argument("--specs", type=Path, default=DEFAULT_SPECS_DIR, help="the model specs the results are checked against")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        out = generate(args.results, args.docs, args.specs)
    except ArenaError as err:
        print(f"arena.site: error: {err}", file=sys.stderr)
        return 1
    stale = sum(1 for e in out.entries if e.stale)
    platforms = len({e.result.system.platform_id for e in out.entries})
    print(f"{len(out.entries)} results from {platforms} platform(s) → {len(out.files)} files in {args.docs} "
          f"({time.perf_counter() - started:.2f} s)" + (f"; {stale} stale (older spec, changed code or tolerances), flagged" if stale else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
