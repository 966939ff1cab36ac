"""Downloads: every published result file (one by one and as one zip) and the result JSON Schema."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence

from arena.results.schema import SCHEMA_VERSION, json_schema
from arena.site.collect import Entry, group_title
from arena.site.html import block, esc, table, tag

FOLDER = "downloads"
SCHEMA = f"{FOLDER}/result.schema.json"
ZIP = f"{FOLDER}/arena-results.zip"


def files(entries: Sequence[Entry]) -> dict[str, bytes]:
    """Path under the docs folder → content: the raw files byte for byte, their zip, the schema."""
    out = {f"{FOLDER}/{e.download}": e.path.read_bytes() for e in entries}
    out[ZIP] = _zip({path.removeprefix(f"{FOLDER}/"): data for path, data in out.items()})
    out[SCHEMA] = (json.dumps(json_schema(), indent=2) + "\n").encode()
    return out


def _zip(members: dict[str, bytes]) -> bytes:
    """A zip with fixed timestamps, so the same results give the same bytes (and the same site)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(members):
            archive.writestr(zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0)), members[name], zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def page(entries: Sequence[Entry]) -> str:
    rows = [
        tag("tr", "".join(tag("td", esc(v)) for v in (group_title(e.group), e.result.model, e.result.framework, e.result.device, e.result.dtype, e.result.status))
            + tag("td", tag("a", tag("code", esc(e.download)), href=f"{FOLDER}/{e.download}")))
        for e in entries
    ]
    return "\n".join([
        "# Downloads", "",
        f"- All result files in one archive: [arena-results.zip]({ZIP})",
        f"- The result JSON Schema (version {SCHEMA_VERSION}): [result.schema.json]({SCHEMA}); "
        "the same as `python -m arena.results schema` writes. Each file below validates against it.", "",
        "Folders from any number of machines merge by copying: `results/<platform>/<model>/<preset>/<framework>-<device>-<dtype>.json`.", "",
        block(table(("platform", "model", "framework", "device", "dtype", "status", "file"), rows), class_="arena-table"),
    ])
