"""Escaping and the few HTML pieces the pages are built from.

Every string that comes from a result file passes through `esc` (HTML: element text and attribute
values alike) or `md` (Markdown text such as a heading, where `*`, `_`, `[` … would otherwise format).
Tables are raw HTML blocks: Markdown leaves their content alone, so escaping once is enough, and rows
can carry classes (fail, stale) and hover titles that Markdown tables cannot.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence

from arena.results.schema import MIN_SAMPLES_FOR_CI, Stats
from arena.results.stats import NOISY_CV, caveats

_MD_PLAIN = re.compile(r"[A-Za-z0-9 ,.\-]")  # never Markdown syntax inside a line


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def md(text: object) -> str:
    """Text inside a Markdown line (a heading, a sentence; not at a line's start): every character that
    could be Markdown or HTML syntax becomes a numeric character reference, which renders as itself."""
    return "".join(c if _MD_PLAIN.fullmatch(c) else f"&#{ord(c)};" for c in str(text))


def slug(text: str) -> str:
    """A file name / anchor from any string: lower-case letters, digits, dots and dashes only."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.") or "x"


def tag(name: str, content: str = "", **attrs: object) -> str:
    """<name attrs>content</name>; attribute values are escaped, content is trusted (build it escaped)."""
    rendered = "".join(f' {key.rstrip("_").replace("_", "-")}="{esc(value)}"' for key, value in attrs.items() if value not in (None, ""))
    return f"<{name}{rendered}>{content}</{name}>"


def table(header: Sequence[str], rows: Iterable[str], **attrs: object) -> str:
    """A raw-HTML table block. Rows are finished <tr> strings; the block has no blank line (Markdown needs that)."""
    head = tag("thead", tag("tr", "".join(tag("th", esc(h)) for h in header)))
    return tag("table", head + tag("tbody", "\n".join(rows)), **attrs)


def block(content: str, **attrs: object) -> str:
    """A <div> on its own lines: Markdown passes it through untouched (it must hold no blank line)."""
    return "\n" + tag("div", "\n" + content.replace("\n\n", "\n") + "\n", **attrs) + "\n"


CAVEAT_TITLE = (f"Read with care: fewer than {MIN_SAMPLES_FOR_CI} timed calls give no confidence interval of the median; "
                f"a CV over {NOISY_CV:.0%} means the calls varied widely.")


def caveat_lines(s: Stats) -> str:
    """What must be read beside a median (too few calls, a wide spread), each on a line of its own under it, flagged."""
    return "".join("<br>" + tag("small", "⚠ " + esc(note), class_="arena-caveat", title=CAVEAT_TITLE) for note in caveats(s))
