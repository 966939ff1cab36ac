"""The results site: results folders → Markdown pages, inline SVG charts and downloads for MkDocs.

    collect        read results strictly, merge machines, flag stale results (older spec, changed code)
    html, charts   escaping and table pieces; SVG charts drawn from numbers
    home, model, accessibility, methodology, downloads
                   one module per page (kind), each returning Markdown
    build          write the generated paths of the docs folder; __main__ is the command

It reads result files, specs, family modules (numpy and pydantic only) and the source tree's hashes
(arena/run/fingerprint.py, for staleness): never a framework.
"""
