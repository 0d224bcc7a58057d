"""socmap's test-suite. Optional-dependency skip markers live here, in one place (xarray style)."""

from __future__ import annotations

import importlib
import shutil

import pytest

__all__ = ["has_cuda", "has_rustac", "requires_cuda", "requires_rustac"]


def _importorskip(modname: str) -> tuple[bool, pytest.MarkDecorator]:
    try:
        importlib.import_module(modname)
        has = True
    except ImportError:
        has = False
    return has, pytest.mark.skipif(not has, reason=f"requires {modname}")


def _cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover
        return False


has_cuda = _cuda()
requires_cuda = pytest.mark.skipif(not has_cuda, reason="requires a CUDA device")
has_rustac = shutil.which("rustac") is not None
requires_rustac = pytest.mark.skipif(not has_rustac, reason="requires the rustac CLI (pip install socmap[test])")
