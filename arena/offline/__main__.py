"""python -m arena.offline DEST: the wheels an offline host needs (see arena/offline/__init__.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from arena.errors import ArenaError
from arena.offline import bundle

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m arena.offline", description=__doc__)
    parser.add_argument("dest", type=Path, help="bundle folder (its wheels/ subfolder is written); keep it git-ignored, e.g. .offline")
    parser.add_argument("--python", default="3.12", help="the host's CPython version (default 3.12)")
    parser.add_argument("--extras", default=",".join(bundle.EXTRAS), help="Arena extras whose requirements are brought (default torch,jax,tinygrad)")
    parser.add_argument("--host-has", default=",".join(bundle.HOST_HAS), help="distributions the host has and that are not brought")
    parser.add_argument("--pin", action="append", default=[], help="NAME==VERSION for the host (default: torchvision==0.26.0 for its torch 2.11)")
    parser.add_argument("--budget-mib", type=float, default=bundle.BUDGET_MIB, help="what may travel, working tree included")
    args = parser.parse_args(argv)
    pins = dict(bundle.HOST_PINS)
    for pin in args.pin:
        name, _, version = pin.partition("==")
        pins[name] = f"=={version}"
    try:
        wanted = bundle.requirements(tuple(filter(None, args.extras.split(","))), tuple(args.host_has.split(",")), pins, args.python)
        wheels = bundle.download(wanted, args.dest / "wheels", args.python)
        total = bundle.check_budget(wheels, bundle.tracked_bytes(REPO), args.budget_mib)
    except ArenaError as err:
        print(f"arena.offline: {err}", file=sys.stderr)
        return 1
    print(f"{len(wheels)} wheels, {total / 2**20:.1f} MiB, in {args.dest / 'wheels'} (requirements.txt pins them); on the host, "
          f"from the repository root: bash arena/offline/run.sh {args.dest} +matrix=nvidia ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
