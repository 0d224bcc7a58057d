"""Cache one ViT embedding per sample, so the GNN never runs the ViT (``socmap embed``).

Reads ``<data dir>/patches.zarr`` (``socmap extract``) and ``<data dir>/samples.parquet`` (``socmap prepare``), runs
the frozen image encoder (:class:`socmap.encoders.terramind.ImageEncoder`: TerraMind + CLS-merge + max-pool) once per
sample with a usable patch, and writes ``embeddings.zarr`` (into the data folder for ``socmap embed``), a zarr v3
group:

============  ================  ===========================================================================
array         dtype, shape      meaning
============  ================  ===========================================================================
embedding     float32 (N, D)    :math:`\\mathbf h^{vit}_i`; NaN rows where ``ok`` is False
sample_id     str (N,)          same order as patches.zarr; join to samples.parquet on it
ok            bool (N,)         False where the patch was missing (the model's "no image" vector is used)
============  ================  ===========================================================================

Group attributes: ``format`` ("socmap-embeddings/1"), ``backbone``, ``modalities``, ``merge``, ``dim`` (D),
``patch_size``, ``checkpoint`` (the file that rebuilds the encoder: the given checkpoint, or
``<data dir>/encoder_weights.pt`` when none was given), ``init_seed`` (seed of the random initialisation of
every weight no checkpoint provides), ``pretrained`` (False when the weights were random).
The group is written under a temporary name and renamed into place.

Without a checkpoint the weights are a seeded random draw and are also written to ``<data dir>/encoder_weights.pt``
(:data:`socmap.io.ENCODER_WEIGHTS`), so the map job and the model bundle use exactly this encoder
(:func:`socmap.encoders.weights.load_map_encoder`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from socmap.config import PipelineConfig
from socmap.data.samples import TARGET, read_samples
from socmap.device import AUTO, resolve_device
from socmap.encoders.terramind import ImageEncoder, build_image_encoder
from socmap.encoders.weights import ENCODER_INIT_SEED, save_encoder_weights
from socmap.eo.store import PatchStore, open_patches
from socmap.errors import DataError, ModelError
from socmap.io import EMBEDDINGS, ENCODER_WEIGHTS, SAMPLES, VIT_FINETUNED, atomic_path

__all__ = ["EMBEDDINGS", "FINETUNED", "EmbedResult", "Embeddings", "encode_batches", "load_embeddings", "run"]

log = logging.getLogger(__name__)
FINETUNED = VIT_FINETUNED
"""Alias of :data:`socmap.io.VIT_FINETUNED`."""


@dataclass
class Embeddings:
    """Cached embeddings: ``sample_id`` (N,) str, ``embedding`` (N, D) float32, ``ok`` (N,) bool, ``attrs``."""

    sample_id: np.ndarray
    embedding: np.ndarray
    ok: np.ndarray
    attrs: dict[str, Any]

    def aligned(self, sample_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(embedding, ok)`` in the order of ``sample_ids``; unknown ids get NaN and ok=False."""
        pos = {s: i for i, s in enumerate(self.sample_id)}
        idx = np.array([pos.get(str(s), -1) for s in sample_ids])
        emb = np.full((len(idx), self.embedding.shape[1]), np.nan, np.float32)
        ok = np.zeros(len(idx), bool)
        hit = idx >= 0
        emb[hit], ok[hit] = self.embedding[idx[hit]], self.ok[idx[hit]]
        return emb, ok


@torch.no_grad()
def encode_batches(encoder: ImageEncoder, store: PatchStore, rows: np.ndarray, batch_size: int, device: torch.device,
                   desc: str = "embed") -> np.ndarray:
    """Embeddings (len(rows), D) of patches.zarr rows ``rows``, in batches, with a progress bar."""
    encoder.eval().to(device)
    out = np.empty((len(rows), encoder.dim), np.float32)
    for start in tqdm(range(0, len(rows), batch_size), desc=desc, unit="batch"):
        sel = rows[start:start + batch_size]
        x = {m: torch.from_numpy(a).to(device) for m, a in store.read(sel).items()}
        out[start:start + len(sel)] = encoder(x).float().cpu().numpy()
    return out


@dataclass
class EmbedResult:
    """What :func:`run` wrote: ``embeddings.zarr`` at ``path``, ``n_embedded`` rows of width ``width`` (the samples
    with a usable patch; the others are NaN rows)."""

    path: Path
    n_embedded: int
    width: int

    def summary(self) -> str:
        """One line for the CLI: where the embeddings went."""
        return f"embeddings: {self.path}"


def run(cfg: PipelineConfig, data_dir: str | Path, out: str | Path, *,
        checkpoint: str | Path | None = None, batch_size: int | None = None, device: str = AUTO) -> EmbedResult:
    """Encode every usable patch once and write ``<out>/embeddings.zarr``.

    Args:
        cfg: the pipeline (its ``model.encoder`` block).
        data_dir: folder holding patches.zarr and samples.parquet.
        out: folder for embeddings.zarr (and, without a checkpoint, the seeded random encoder weights it was
            drawn with); ``socmap embed`` gives the data folder itself, where train reads it.
        checkpoint: encoder weights; default ``<data_dir>/vit_finetuned.pt`` if it exists (written by
            ``socmap finetune-vit``), else ``model.encoder.checkpoint`` (a raw TerraMind checkpoint), else random.
        batch_size: samples per forward pass (default ``model.encoder.batch_size``).
        device: ``auto``, ``cpu`` or ``cuda`` (:mod:`socmap.device`).
    """
    import zarr

    data_dir, out_dir = Path(data_dir), Path(out)
    enc_cfg = cfg.model.encoder
    store = open_patches(data_dir, list(enc_cfg.modalities))
    samples = read_samples(data_dir, required=TARGET)
    unknown = np.setdiff1d(store.sample_id, samples["sample_id"].to_numpy())
    if len(unknown):
        raise DataError(f"{store.path} holds {len(unknown)} sample_id(s) not in {data_dir / SAMPLES} "
                        f"(e.g. {unknown[0]!r}); run `socmap extract` again on the current samples")
    if checkpoint is None:
        fin = data_dir / FINETUNED
        if fin.exists():
            checkpoint = fin
        elif enc_cfg.checkpoint is not None:
            checkpoint = cfg.resolve(enc_cfg.checkpoint)
    encoder = build_image_encoder(enc_cfg, checkpoint, img_size=store.patch_size, seed=ENCODER_INIT_SEED)
    pretrained = checkpoint is not None
    out_dir.mkdir(parents=True, exist_ok=True)
    if checkpoint is None:  # random weights: keep the exact draw, so maps and bundles can rebuild this encoder
        checkpoint = save_encoder_weights(encoder, enc_cfg, out_dir / ENCODER_WEIGHTS, store.patch_size,
                                          ENCODER_INIT_SEED).resolve()
    rows = np.flatnonzero(store.ok)
    dev = resolve_device(device)
    emb = np.full((len(store), encoder.dim), np.nan, np.float32)
    if len(rows):
        emb[rows] = encode_batches(encoder, store, rows, batch_size or enc_cfg.batch_size, dev)
    final = out_dir / EMBEDDINGS
    with atomic_path(final) as tmp:
        g = zarr.open_group(str(tmp), mode="w")
        g.create_array("embedding", data=emb, chunks=(min(len(emb), 4096) or 1, emb.shape[1]))
        sid = g.create_array("sample_id", shape=(len(store),), dtype=str)
        sid[:] = store.sample_id
        g.create_array("ok", data=store.ok.copy())
        g.attrs.update({
            "format": "socmap-embeddings/1", "backbone": enc_cfg.backbone, "modalities": list(encoder.modalities),
            "merge": enc_cfg.merge, "dim": int(encoder.dim), "patch_size": store.patch_size,
            "checkpoint": str(checkpoint), "init_seed": ENCODER_INIT_SEED, "pretrained": pretrained,
        })
    log.info("wrote %s: %d embeddings of width %d (%d without a patch)", final, len(rows), encoder.dim,
             len(store) - len(rows))
    return EmbedResult(path=final, n_embedded=len(rows), width=int(encoder.dim))


def load_embeddings(path: str | Path) -> Embeddings:
    """Read an embeddings.zarr (or the data dir holding one)."""
    import zarr

    path = Path(path)
    if path.is_dir() and path.name != EMBEDDINGS and (path / EMBEDDINGS).exists():
        path = path / EMBEDDINGS
    if not path.exists():
        raise ModelError(f"{path} not found: run `socmap embed --data DIR` first, or drop 'image' from "
                         "model.streams")
    g: Any = zarr.open_group(str(path), mode="r")
    if g.attrs.get("format") != "socmap-embeddings/1":
        raise ModelError(f"{path} is not a socmap embeddings group (format {g.attrs.get('format')!r}); "
                         "run `socmap embed` again")
    return Embeddings(np.array([str(s) for s in np.asarray(g["sample_id"][...]).tolist()]),
                      np.asarray(g["embedding"][...]), np.asarray(g["ok"][...]).astype(bool), dict(g.attrs))
