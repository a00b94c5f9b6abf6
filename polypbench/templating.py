"""The Jinja2 environment of every HTML page polypbench writes or serves (reports, leaderboard pages).

Templates are package data in ``polypbench/templates``; ``*.html.j2`` are autoescaped, so every value a page shows
(method names, team names, file names) is escaped by default. ``*.md.j2`` (Markdown) are not; their table cells go
through the ``md_cell`` filter instead.

A base utility: it imports nothing of polypbench, so any layer (evaluate's reports, the leaderboard's pages) may
render with it. Values reach a template already formatted (numbers by :mod:`polypbench.evaluate.format`, in the
caller), never formatted by a filter that would make this module import the layers that use it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


def md_cell(value: object) -> str:
    """A Markdown table cell: ``|`` escaped, on one line."""
    return " ".join(str(value).replace("|", "\\|").split())


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The shared environment: package templates, HTML autoescaped, undefined names are errors."""
    env = Environment(
        loader=PackageLoader("polypbench", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=True, default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md_cell"] = md_cell
    return env


def render(template: str, **context: Any) -> str:
    """Render the packaged ``template`` (e.g. ``report.html.j2``) with ``context``."""
    return environment().get_template(template).render(**context)
