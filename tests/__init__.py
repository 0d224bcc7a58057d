"""socmap's test-suite. Optional-dependency skip markers live here, in one place (xarray style).

Use them as decorators (``@requires_rustac``) or as the registered marks (``@pytest.mark.requires_rustac``,
``@pytest.mark.requires_cuda`` / ``@pytest.mark.gpu``), which tests/conftest.py turns into the same skips.
Test helpers are imported as packages: ``from tests.eo.conftest import pipeline``, ``from tests.soil.helpers ...``.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

__all__ = ["has_cuda", "has_rustac", "load_benchmark", "requires_cuda", "requires_rustac", "rustac_exe"]


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


def rustac_exe() -> str | None:
    """The ``rustac`` CLI of this interpreter's environment (works without activating the venv), else PATH's."""
    beside = Path(sys.executable).parent / "rustac"
    return str(beside) if beside.is_file() else shutil.which("rustac")


has_rustac = rustac_exe() is not None
requires_rustac = pytest.mark.skipif(not has_rustac, reason="requires the rustac CLI (pip install socmap[test])")


def load_benchmark(name: str) -> Any:
    """The script ``benchmarks/NAME.py`` as a module (the benchmarks are scripts, not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
