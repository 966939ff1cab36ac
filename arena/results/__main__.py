"""`python -m arena.results COMMAND`:

    schema [PATH]                       export the result JSON Schema (stdout, or a file)
    rejudge RESULTS_DIR [--cache-dir D] [--specs-dir D]
                                        judge stored outputs again after a change of the verdict's code
                                        or a spec's tolerances, without re-measuring (arena/run/rejudge.py)
    rehash RESULTS_DIR                  restate fingerprints hashed byte for byte by the current scheme
                                        (Python files by their code), where the files are unchanged
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from arena.results.schema import SCHEMA_VERSION, json_schema


def schema(args: argparse.Namespace) -> int:
    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.path:
        Path(args.path).write_text(text)
        print(f"wrote result schema v{SCHEMA_VERSION} to {args.path}")
    else:
        sys.stdout.write(text)
    return 0


def existing_folder(path: str) -> Path | None:
    if not Path(path).is_dir():
        print(f"arena: no results folder {path}", file=sys.stderr)
        return None
    return Path(path)


def rejudge(args: argparse.Namespace) -> int:
    from arena.run.rejudge import rejudge as run_rejudge  # the run layer: imported only for this command
    from arena.specs import load_specs
    from arena.specs.loader import DEFAULT_SPECS_DIR

    results_dir = existing_folder(args.results_dir)
    if results_dir is None:
        return 2
    specs = load_specs(Path(args.specs_dir) if args.specs_dir else DEFAULT_SPECS_DIR)
    outcomes = run_rejudge(results_dir, Path(args.cache_dir).expanduser(), specs)
    counts = Counter(o.action for o in outcomes)
    print(f"arena: {counts['rejudged']} re-judged, {counts['current']} already current, {counts['re-run']} need a re-run")
    return 0


def rehash(args: argparse.Namespace) -> int:
    from arena.run.rejudge import rehash as run_rehash  # the run layer: imported only for this command

    results_dir = existing_folder(args.results_dir)
    if results_dir is None:
        return 2
    counts = Counter(o.action for o in run_rehash(results_dir))
    print(f"arena: {counts['rehashed']} rehashed, {counts['current']} already current, {counts['left']} left as they were")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m arena.results", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", required=True)
    p = commands.add_parser("schema", help="export the result JSON Schema")
    p.add_argument("path", nargs="?", help="write it to this file instead of stdout")
    p.set_defaults(func=schema)
    p = commands.add_parser("rejudge", help="judge stored outputs again without re-measuring")
    p.add_argument("results_dir")
    p.add_argument("--cache-dir", default="~/.cache/arena", help="the cache the run used (default %(default)s)")
    p.add_argument("--specs-dir", help="the specs (default: the repository's specs/models)")
    p.set_defaults(func=rejudge)
    p = commands.add_parser("rehash", help="restate byte-for-byte fingerprints by the current scheme")
    p.add_argument("results_dir")
    p.set_defaults(func=rehash)
    return top


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
