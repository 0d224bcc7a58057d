"""The one meaning of ``auto`` and the one-torch-thread block of the map's tiles."""

from __future__ import annotations

import contextlib

import pytest
import torch

from socmap.device import one_torch_thread, resolve_device
from socmap.errors import ModelError


def test_auto_is_cpu_without_a_gpu() -> None:
    if torch.cuda.is_available():  # pragma: no cover - GPU machines
        pytest.skip("a GPU is present")
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ModelError, match="no CUDA device"):
        resolve_device("cuda")


@pytest.mark.parametrize("fails", [False, True])
def test_one_torch_thread_restores_the_count(fails: bool) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError) if fails else contextlib.nullcontext():
            with one_torch_thread():
                assert torch.get_num_threads() == 1
                if fails:
                    raise RuntimeError("a tile failed")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)

