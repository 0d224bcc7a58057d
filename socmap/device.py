"""The torch device a stage runs on: the one meaning of ``auto``, ``cpu`` and ``cuda``.

``--device`` (``socmap train``, ``evaluate``, ``finetune-vit``, ``embed``) and the pipeline's ``train.device`` take
one of :data:`DEVICES`:

- ``auto``: CUDA when a GPU is present, else the CPU;
- ``cpu``: the CPU;
- ``cuda``: the GPU; an error (:class:`~socmap.errors.ModelError`) where there is none.

A stage whose ``device`` option is left out (``None``) uses its own default, which its ``run`` states (``train``:
the pipeline's ``train.device``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal, get_args

from socmap.errors import ModelError

if TYPE_CHECKING:
    import torch

__all__ = ["AUTO", "DEVICES", "Device", "one_torch_thread", "resolve_device"]

Device = Literal["auto", "cpu", "cuda"]
"""A device name as a pipeline or ``--device`` spells it."""
DEVICES: tuple[str, ...] = get_args(Device)
"""The device names, for ``--device``'s choices."""
AUTO: Device = "auto"
"""CUDA when present, else CPU."""


def resolve_device(device: str) -> torch.device:
    """The torch device ``device`` (one of :data:`DEVICES`) names: ``auto`` -> CUDA when present, else CPU;
    ``cuda`` without a GPU is a :class:`~socmap.errors.ModelError`."""
    import torch

    if device == AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda was asked for but no CUDA device is available; use --device auto or cpu")
    return torch.device(device)


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the block with one torch intra-op thread, then restore the count the calling thread had.

    Map tiles' products are small (thousands of rows, widths <= 512): a second intra-op thread mostly waits on the
    first, and on a busy machine spinning threads slow the step by 10-40x (``benchmarks/map_scaling.py``); tiles,
    not products, run in parallel (Dask workers, or the local run's tile threads, which each start with one torch
    thread: OpenMP keeps the count per thread)."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)
