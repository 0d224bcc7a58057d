"""Fine-tune the image encoder as a regression on log SOC, then freeze it (paper 3.3, ``socmap finetune-vit``).

Model: :class:`~socmap.encoders.terramind.ImageEncoder` (TerraMind + CLS-merge + max-pool) and an MLP head
``D -> 256 -> 1`` on the standardised target :math:`(\\log \\mathrm{SOC} - \\mu) / \\sigma` (``mu``, ``sigma`` of the
training rows). Schedule: ``model.encoder.finetune_epochs`` epochs in all; the first
``finetune_warmup_epochs`` keep the backbone frozen (only CLS-merge and head learn), then the backbone is unfrozen
with learning rate ``finetune_lr * finetune_backbone_lr_scale``. Loss: ``finetune_loss`` (MSE or Huber). Rows:
``split == "train"`` with ``ok`` patches; ``split == "val"`` rows give a validation loss per epoch. At the end the
backbone is frozen again and everything is saved to ``<data dir>/vit_finetuned.pt`` (temporary name, then rename):
``{"format": "socmap-vit/1", "config": {...encoder sizes...}, "img_size", "encoder": state_dict, "head":
state_dict, "target": {"mean", "std"}, "history": [...]}``. :func:`socmap.encoders.embed.run` picks it up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from socmap.config import EncoderConfig, PipelineConfig
from socmap.data.samples import TARGET, read_samples
from socmap.device import AUTO, resolve_device
from socmap.encoders.terramind import ImageEncoder, build_image_encoder
from socmap.eo.store import PatchStore, open_patches
from socmap.errors import DataError
from socmap.io import SAMPLES, VIT_FINETUNED, atomic_path
from socmap.layers import MLP

__all__ = ["FinetuneOptions", "FinetuneResult", "run", "train_vit_regression"]

log = logging.getLogger(__name__)


@dataclass
class FinetuneResult:
    """Where the fine-tuned encoder was written, and one dict per epoch (phase, train_loss, val_loss)."""

    path: Path
    history: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the CLI: where the encoder went, its epochs and the last epoch's losses."""
        last = self.history[-1] if self.history else {}
        return f"fine-tuned encoder: {self.path} ({len(self.history)} epochs, last {last})"


@dataclass(frozen=True)
class FinetuneOptions:
    """The schedule of :func:`train_vit_regression`; :meth:`from_config` fills it from the pipeline's
    :class:`~socmap.config.EncoderConfig`, where the defaults live."""

    epochs: int
    """Epochs in all, warm-up included."""
    warmup_epochs: int
    """First epochs with the backbone frozen (only CLS-merge and the head learn)."""
    lr: float
    """AdamW learning rate of CLS-merge and the head."""
    backbone_lr_scale: float
    """Backbone learning rate = ``lr * backbone_lr_scale`` once unfrozen."""
    batch_size: int
    """Samples per step."""
    loss: str
    """``mse`` or ``huber`` on the standardised log SOC."""
    seed: int
    """Seed of the shuffling and of torch."""

    @classmethod
    def from_config(cls, enc: EncoderConfig, *, epochs: int | None = None, warmup_epochs: int | None = None,
                    batch_size: int | None = None, seed: int = 0) -> FinetuneOptions:
        """The encoder block's schedule, with the given overrides."""
        return cls(epochs=enc.finetune_epochs if epochs is None else epochs,
                   warmup_epochs=enc.finetune_warmup_epochs if warmup_epochs is None else warmup_epochs,
                   lr=enc.finetune_lr, backbone_lr_scale=enc.finetune_backbone_lr_scale,
                   batch_size=batch_size or enc.batch_size, loss=enc.finetune_loss, seed=seed)


def _loss(kind: str, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(pred, y) if kind == "mse" else F.huber_loss(pred, y)


def _batch(store: PatchStore, rows: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
    return {m: torch.from_numpy(a).to(device) for m, a in store.read(rows).items()}


def train_vit_regression(encoder: ImageEncoder, head: nn.Module, store: PatchStore, train_rows: np.ndarray,
                         y_train: np.ndarray, val_rows: np.ndarray, y_val: np.ndarray, opts: FinetuneOptions,
                         device: torch.device) -> list[dict[str, Any]]:
    """The training loop (targets already standardised). Leaves the backbone frozen; returns the history."""
    epochs, warmup_epochs, batch_size, loss = opts.epochs, opts.warmup_epochs, opts.batch_size, opts.loss
    lr, backbone_lr_scale = opts.lr, opts.backbone_lr_scale
    gen = np.random.default_rng(opts.seed)
    torch.manual_seed(opts.seed)
    encoder.to(device)
    head.to(device)
    history: list[dict[str, Any]] = []
    heads_params = [*encoder.cls_merge.parameters(), *head.parameters()]
    opt = torch.optim.AdamW([{"params": heads_params, "lr": lr},
                             {"params": list(encoder.backbone.parameters()), "lr": lr * backbone_lr_scale}])
    for epoch in range(epochs):
        phase = "warmup" if epoch < warmup_epochs else "finetune"
        encoder.freeze_backbone(phase == "warmup")
        encoder.train()
        head.train()
        if phase == "warmup":
            encoder.backbone.eval()
        order = gen.permutation(len(train_rows))
        total, count = 0.0, 0
        for start in tqdm(range(0, len(order), batch_size), desc=f"finetune {epoch + 1}/{epochs} ({phase})",
                          unit="batch", leave=False):
            sel = np.sort(order[start:start + batch_size])
            x = _batch(store, train_rows[sel], device)
            y = torch.as_tensor(y_train[sel], dtype=torch.float32, device=device)
            pred = head(encoder(x)).squeeze(-1)
            loss_v = _loss(loss, pred, y)
            opt.zero_grad(set_to_none=True)
            loss_v.backward()
            opt.step()
            total += float(loss_v.detach()) * len(sel)
            count += len(sel)
        rec: dict[str, Any] = {"epoch": epoch + 1, "phase": phase, "train_loss": total / max(count, 1)}
        if len(val_rows):
            encoder.eval()
            head.eval()
            with torch.no_grad():
                vt = 0.0
                for start in range(0, len(val_rows), batch_size):
                    x = _batch(store, val_rows[start:start + batch_size], device)
                    y = torch.as_tensor(y_val[start:start + batch_size], dtype=torch.float32, device=device)
                    vt += float(_loss(loss, head(encoder(x)).squeeze(-1), y)) * len(y)
            rec["val_loss"] = vt / len(val_rows)
        log.info("finetune epoch %s", rec)
        history.append(rec)
    encoder.freeze_backbone(True)
    encoder.eval()
    return history


def run(cfg: PipelineConfig, data_dir: str | Path, out: str | Path, *, epochs: int | None = None,
        warmup_epochs: int | None = None, batch_size: int | None = None, device: str = AUTO,
        seed: int = 0) -> FinetuneResult:
    """Fine-tune on ``data_dir``'s patches and log SOC; write ``<out>/vit_finetuned.pt``.

    Args:
        cfg: the pipeline: its ``model.encoder`` block gives encoder sizes, raw checkpoint, fine-tuning schedule.
        data_dir: folder holding patches.zarr and samples.parquet.
        out: folder for ``vit_finetuned.pt`` (created); ``socmap finetune-vit`` gives the data folder itself,
            where ``socmap embed`` picks it up.
        epochs, warmup_epochs, batch_size: default ``model.encoder.finetune_epochs`` /
            ``finetune_warmup_epochs`` / ``batch_size``.
        device: ``auto``, ``cpu`` or ``cuda`` (:mod:`socmap.device`).
        seed: seed of the head's initialisation and the batch order.
    """
    data_dir = Path(data_dir)
    enc_cfg = cfg.model.encoder
    opts = FinetuneOptions.from_config(enc_cfg, epochs=epochs, warmup_epochs=warmup_epochs, batch_size=batch_size,
                                       seed=seed)
    if opts.epochs < 1:
        raise DataError("finetune-vit needs at least one epoch: set model.encoder.finetune_epochs or --epochs")
    store = open_patches(data_dir, list(enc_cfg.modalities))
    samples = read_samples(data_dir, required=TARGET).set_index("sample_id")
    missing = np.setdiff1d(store.sample_id, samples.index.to_numpy())
    if len(missing):
        raise DataError(f"{store.path}: sample_id {missing[0]!r} is not in {SAMPLES}; run `socmap extract` "
                        "again on the current samples")
    soc = samples.loc[store.sample_id, "soc_gkg"].to_numpy(dtype=np.float64)
    split = samples.loc[store.sample_id, "split"].to_numpy().astype(str)
    ok = store.ok
    usable = ok & np.isfinite(soc) & (soc > 0)
    train_rows = np.flatnonzero(usable & (split == "train"))
    val_rows = np.flatnonzero(usable & (split == "val"))
    if len(train_rows) == 0:
        raise DataError(f"{data_dir}: no training sample has a usable patch (ok) and a positive soc_gkg")
    logy = np.log(soc)
    mu, sd = float(logy[train_rows].mean()), float(logy[train_rows].std() or 1.0)
    ystd = (logy - mu) / sd
    ckpt = None
    if enc_cfg.checkpoint is not None:
        ckpt = cfg.resolve(enc_cfg.checkpoint)
    encoder = build_image_encoder(enc_cfg, ckpt, img_size=store.patch_size)
    head = MLP(encoder.dim, [256], 1, dropout=0.1)
    history = train_vit_regression(encoder, head, store, train_rows, ystd[train_rows], val_rows, ystd[val_rows],
                                   opts, resolve_device(device))
    Path(out).mkdir(parents=True, exist_ok=True)
    path = Path(out) / VIT_FINETUNED
    state = {
        "format": "socmap-vit/1",
        "config": {"backbone": enc_cfg.backbone, "modalities": list(enc_cfg.modalities), "merge": enc_cfg.merge,
                   "cls_layers": enc_cfg.cls_layers, "cls_heads": enc_cfg.cls_heads, "cls_ff": enc_cfg.cls_ff},
        "img_size": store.patch_size,
        "encoder": {k: v.cpu() for k, v in encoder.state_dict().items()},
        "head": {k: v.cpu() for k, v in head.state_dict().items()},
        "target": {"mean": mu, "std": sd, "transform": "log"},
        "history": history,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return FinetuneResult(path, history)
