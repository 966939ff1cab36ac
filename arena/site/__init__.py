"""The results site: results folders → Markdown pages, inline SVG charts and downloads for MkDocs.

    collect        read results strictly, merge machines, flag older spec versions
    html, charts   escaping and table pieces; SVG charts drawn from numbers
    home, model, accessibility, methodology, downloads
                   one module per page (kind), each returning Markdown
    build          write the generated paths of the docs folder; __main__ is the command

It reads result files, specs and family modules (numpy and pydantic only): never a framework.
"""
