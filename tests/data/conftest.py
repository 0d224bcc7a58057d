"""Fixtures of the socmap.data tests; the helpers live in socmap_data_helpers (importable by the tests)."""

from __future__ import annotations

from socmap_data_helpers import survey

__all__ = ["survey"]
