"""Fixtures of the socmap.data tests; the helpers live in tests.soil.helpers."""

from __future__ import annotations

from tests.soil.helpers import survey

__all__ = ["survey"]
