"""`python -m arena.cluster resources [--matrix NAME ...]`: the resources this machine offers a Ray cluster.

Prints JSON for `ray start --resources="$(python -m arena.cluster resources)"` (see resources.py).
"""

from __future__ import annotations

import argparse
import sys

from arena.errors import ArenaError


def main(argv: list[str] | None = None) -> int:
    from arena.run.system import detect_matrix
    from arena.cluster.resources import node_resources, resources_json

    parser = argparse.ArgumentParser(prog="python -m arena.cluster", description="Arena on a Ray cluster.")
    commands = parser.add_subparsers(dest="command", required=True)
    resources = commands.add_parser("resources", help="print the `ray start --resources` JSON for this machine")
    resources.add_argument("--matrix", action="append", metavar="NAME",
                           help=f"a matrix this node serves (repeat for several; default: {detect_matrix()} and smoke, "
                                "i.e. this machine's own and the smoke test)")
    args = parser.parse_args(argv)
    try:
        print(resources_json(node_resources(args.matrix or [detect_matrix(), "smoke"])))
    except ArenaError as err:
        print(f"arena: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
