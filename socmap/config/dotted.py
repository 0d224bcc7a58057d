"""Dotted keys into a nested dict: ``"model.graph.k"`` names ``d["model"]["graph"]["k"]`` (the tune space, the
error messages of the schema and ``socmap tune``'s overrides all speak of pipeline keys this way)."""

from __future__ import annotations

from typing import Any


def get_dotted(d: dict[str, Any], key: str) -> Any:
    """``d[a][b][c]`` for ``key = "a.b.c"``."""
    node: Any = d
    for part in key.split("."):
        node = node[part]
    return node


def set_dotted(d: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """Set ``d[a][b][c] = value`` for ``key = "a.b.c"`` (in place; returns ``d``)."""
    *head, last = key.split(".")
    node = d
    for part in head:
        node = node[part]
    node[last] = value
    return d
