"""The two kinds of failure (asv's UserError idea): mistakes a user can fix, and bugs.

`ArenaError` and its subclasses are printed as one line and exit 1; any other exception keeps its
traceback because it is a bug in arena.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ArenaError(Exception):
    """A mistake the user can fix: a bad spec, an unknown name, a missing file."""


class SpecError(ArenaError):
    """A model spec that fails validation. The message names the file and the field path."""


def unknown_name(kind: str, name: str, known: Iterable[str]) -> ArenaError:
    """An error for an unknown family/framework/matrix/preset, with close matches and the full list."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ArenaError(f"unknown {kind} {name!r}.{hint} Known: {', '.join(known) or '(none)'}")
