"""Train one SpTGNN member transductively on the whole sample graph (paper 3.1, 3.7, 4.5, 5.1).

One graph holds every sample (train, validation, test). Only training targets are ever in a loss, a Moran's I
target or (label trick) an input; validation targets are read only to score each epoch. Two step kinds:

- **full graph** (default up to ``train.full_graph_max_nodes`` nodes): one optimiser step per epoch, a forward pass
  over the whole graph with the loss on a random ``train.loss_fraction`` of the training nodes, drawn afresh;
- **mini-batch**: the training nodes are shuffled into batches of ``train.batch_size`` seed nodes; each step runs
  on the seeds' L-hop in-neighbourhood (L = RGAT layers): every in-edge (``train.fanouts: null``, exactly the
  seeds' full-graph outputs) or ``fanouts[h]`` in-edges sampled per node and relation at hop h
  (:func:`sample_subgraph`, as PyG's NeighborLoader). Validation runs every ``train.val_every_steps`` steps.

With ``model.label_input`` the nodes whose loss a step computes have their labels hidden (NaN) in that step's
inputs; at evaluation and prediction every training label is visible and no other label ever is. In mini-batch
mode the label features are computed on the whole graph (a sampled subgraph lacks its outer nodes' in-edges).

AdamW, gradient-norm clipping, ReduceLROnPlateau on the validation loss, early stopping on the validation
``train.select_metric`` (RMSE in g/kg by default) and the best round's weights kept.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from socmap.config import PipelineConfig
from socmap.device import resolve_device
from socmap.errors import ModelError
from socmap.graph import HeteroGraph
from socmap.inference.scaler import TargetScaler
from socmap.metrics import gaussian_nll, regression_metrics
from socmap.model import NodeInputs, SpTGNN
from socmap.model.temporal import fit_year_range
from socmap.train.inputs import TrainingData
from socmap.train.losses import main_loss, total_loss

__all__ = ["GraphContext", "MemberResult", "build_model", "khop_subgraph", "resolve_device",
           "sample_subgraph", "train_member"]


@dataclass
class MaskedGraph:
    """One block-masked layout (``train.mask_block_km``): the training nodes of a random set of blocks of the grid
    moved by ``offset_km`` are attached to the other training nodes as map cells are (in-edges only)."""

    graph: HeteroGraph
    held: Tensor
    """Indices of the held-out training nodes: the loss nodes of a step on this graph."""
    offset_km: tuple[float, float]
    """(x, y) shift of the block grid's origin (``socmap.data.split.block_ids``)."""


@dataclass
class GraphContext:
    """Tensors shared by every member: node inputs, graph, standardised training targets, Moran's I."""

    inputs: NodeInputs
    """Node inputs without labels (``label`` is set per step)."""
    graph: HeteroGraph
    y_train: Tensor
    """(N,) standardised target of the training nodes, NaN elsewhere: the only labels training ever sees."""
    moran: Tensor
    """(N,) local Moran's I of the training targets, NaN elsewhere."""
    train_idx: Tensor
    val_idx: Tensor
    val_soc_gkg: np.ndarray
    """Observed validation SOC, g/kg: scoring only."""
    scaler: TargetScaler
    label_input: bool
    device: torch.device
    masked: list[MaskedGraph] = field(default_factory=list)
    """Block-masked variants (``train.mask_block_km``), see :class:`MaskedGraph`."""
    rowptr: Tensor = field(init=False)
    src_sorted: Tensor = field(init=False)
    edge_order: Tensor = field(init=False)
    """Edge ids sorted by target: ``edge_order[rowptr[i]:rowptr[i + 1]]`` are node i's in-edges."""

    def __post_init__(self) -> None:
        dst = self.graph.edge_index[1]
        order = torch.argsort(dst, stable=True)
        self.src_sorted = self.graph.edge_index[0][order]
        self.edge_order = order
        counts = torch.bincount(dst, minlength=self.graph.num_nodes)
        self.rowptr = torch.zeros(self.graph.num_nodes + 1, dtype=torch.long, device=dst.device)
        self.rowptr[1:] = torch.cumsum(counts, 0)

    @classmethod
    def build(cls, data: TrainingData, graph: HeteroGraph, moran: np.ndarray, scaler: TargetScaler,
              label_input: bool, device: torch.device) -> GraphContext:
        def t(a: np.ndarray | None, dtype: torch.dtype = torch.float32) -> Tensor | None:
            return None if a is None else torch.as_tensor(np.asarray(a), dtype=dtype, device=device)

        train = data.mask("train")
        y = np.where(train, scaler.transform(data.y_log), np.nan)
        inputs = NodeInputs(lonlat=t(data.lonlat), year=t(data.year), tabular=t(data.tabular),  # type: ignore[arg-type]
                            image=t(data.image), image_ok=t(data.image_ok, torch.bool))
        return cls(inputs=inputs, graph=graph.to(device), y_train=t(y), moran=t(np.where(train, moran, np.nan)),  # type: ignore[arg-type]
                   train_idx=torch.as_tensor(np.flatnonzero(train), device=device),
                   val_idx=torch.as_tensor(np.flatnonzero(data.mask("val")), device=device),
                   val_soc_gkg=data.soc_gkg[data.mask("val")], scaler=scaler, label_input=label_input,
                   device=device)

    def visible_labels(self) -> Tensor | None:
        """Labels offered as inputs at evaluation / prediction: every training label, nothing else."""
        return self.y_train if self.label_input else None


def _in_edge_positions(ctx: GraphContext, nodes: Tensor) -> Tensor:
    """Positions, in the target-sorted edge order (``ctx.edge_order`` / ``ctx.src_sorted``), of every in-edge of
    ``nodes``."""
    starts = ctx.rowptr[nodes]
    counts = ctx.rowptr[nodes + 1] - starts
    offs = torch.repeat_interleave(starts - (torch.cumsum(counts, 0) - counts), counts)
    return offs + torch.arange(offs.numel(), device=nodes.device)


def khop_subgraph(ctx: GraphContext, seeds: Tensor, hops: int) -> tuple[Tensor, HeteroGraph, Tensor]:
    """The ``hops``-hop in-neighbourhood of ``seeds``: ``(nodes, subgraph, seed positions in nodes)``.

    The induced subgraph on those nodes gives the seeds the same L-layer outputs as the full graph (a node h hops
    away needs only its first L - h layers, whose inputs lie within the set).
    """
    n = ctx.graph.num_nodes
    mark = torch.zeros(n, dtype=torch.bool, device=seeds.device)
    mark[seeds] = True
    frontier = seeds
    for _ in range(hops):
        if frontier.numel() == 0:
            break
        pos = _in_edge_positions(ctx, frontier)
        if pos.numel() == 0:
            break
        nb = ctx.src_sorted[pos]
        nb = torch.unique(nb[~mark[nb]])
        mark[nb] = True
        frontier = nb
    nodes = torch.nonzero(mark).squeeze(1)
    relabel = torch.full((n,), -1, dtype=torch.long, device=seeds.device)
    relabel[nodes] = torch.arange(len(nodes), device=seeds.device)
    g = ctx.graph
    keep = mark[g.edge_index[0]] & mark[g.edge_index[1]]
    sub = HeteroGraph(relabel[g.edge_index[:, keep]], g.edge_type[keep], g.edge_weight[keep], len(nodes),
                      g.relations)
    return nodes, sub, relabel[seeds]


def sample_subgraph(ctx: GraphContext, seeds: Tensor, fanouts: list[int],
                    generator: torch.Generator | None = None) -> tuple[Tensor, HeteroGraph, Tensor]:
    """Sampled L-hop in-neighbourhood of ``seeds`` (L = ``len(fanouts)``): ``(nodes, subgraph, seed positions)``.

    Hop h keeps, for every node first reached at hop h (the seeds at hop 0), at most ``fanouts[h]`` of its in-edges
    per relation, drawn uniformly without replacement; the next hop expands the sources not yet reached. Only the
    kept edges enter the subgraph (not the induced one), so a step's cost is bounded by the fan-outs, not by the
    graph's expansion. With every fan-out at least the largest in-degree of a relation, all in-edges of the
    nodes within L - 1 hops are kept and the seeds get exactly their full-graph outputs (the outermost nodes need
    only their own inputs; label features come from the whole graph, see :meth:`SpTGNN.forward`).
    """
    g = ctx.graph
    n, r_count, dev = g.num_nodes, g.num_relations, seeds.device
    mark = torch.zeros(n, dtype=torch.bool, device=dev)
    mark[seeds] = True
    frontier, kept = seeds, []
    for fan in fanouts:
        if frontier.numel() == 0:
            break
        pos = _in_edge_positions(ctx, frontier)
        total = pos.numel()
        if total == 0:
            break
        eid = ctx.edge_order[pos]
        group = g.edge_index[1, eid] * r_count + g.edge_type[eid]
        key = torch.rand(total, generator=generator).to(dev)
        order = torch.argsort(key)
        order = order[torch.argsort(group[order], stable=True)]  # by group, random within a group
        gs = group[order]
        first = torch.ones(total, dtype=torch.bool, device=dev)
        first[1:] = gs[1:] != gs[:-1]
        start = torch.cummax(torch.where(first, torch.arange(total, device=dev), 0), 0).values
        eid = eid[order[(torch.arange(total, device=dev) - start) < fan]]
        kept.append(eid)
        src = g.edge_index[0, eid]
        frontier = torch.unique(src[~mark[src]])
        mark[frontier] = True
    nodes = torch.nonzero(mark).squeeze(1)
    relabel = torch.full((n,), -1, dtype=torch.long, device=dev)
    relabel[nodes] = torch.arange(len(nodes), device=dev)
    eid = torch.cat(kept) if kept else torch.zeros(0, dtype=torch.long, device=dev)
    sub = HeteroGraph(relabel[g.edge_index[:, eid]], g.edge_type[eid], g.edge_weight[eid], len(nodes), g.relations)
    return nodes, sub, relabel[seeds]


def build_model(cfg: PipelineConfig, tabular_dim: int, image_dim: int, seed: int,
                train_years: np.ndarray | None = None) -> SpTGNN:
    """A freshly initialised member (weights drawn from ``seed``); the year range is fitted on the training years
    when the model offers a method for it."""
    torch.manual_seed(seed)
    model = SpTGNN(cfg.model, tabular_dim=tabular_dim, image_dim=image_dim)
    if train_years is not None:
        fit_year_range(model, train_years)
    return model


@dataclass
class MemberResult:
    """One trained member: best-epoch weights loaded in ``model``, its per-epoch log and timings."""

    model: SpTGNN
    seed: int
    history: list[dict[str, float]]
    best_epoch: int
    best_val: dict[str, float]
    seconds: float
    mode: str
    stopped_by: str = "epoch bound"
    """Why training stopped: ``early stopping`` (``train.early_stop_patience``), ``epoch bound`` (``train.epochs``
    rounds run) or ``time budget`` (``train.max_minutes`` spent first: the member is shorter than the same command
    gives on an idle machine)."""


@torch.no_grad()
def evaluate_nodes(model: SpTGNN, ctx: GraphContext) -> tuple[Tensor, Tensor]:
    """Eval-mode full-graph pass with every training label visible: ``(soc, logvar)`` standardised, all nodes."""
    was = model.training
    model.eval()
    try:
        out = model(replace(ctx.inputs, label=ctx.visible_labels()), ctx.graph)
    finally:
        model.train(was)
    return out.soc, out.logvar


def _val_scores(model: SpTGNN, ctx: GraphContext, epoch: int, cfg: PipelineConfig) -> dict[str, float]:
    soc, logvar = evaluate_nodes(model, ctx)
    v = ctx.val_idx
    z_val = torch.as_tensor(ctx.scaler.transform(np.log1p(ctx.val_soc_gkg)), dtype=soc.dtype, device=soc.device)
    val_loss = main_loss(cfg.train.loss, soc[v], logvar[v], z_val, None, epoch=epoch, cfg=cfg.train,
                         huber_delta=cfg.model.huber_delta / ctx.scaler.sd)
    soc_v = soc[v].double().cpu().numpy()
    nll = gaussian_nll(z_val.double().cpu().numpy(), soc_v, np.exp(logvar[v].double().cpu().numpy()))
    m = regression_metrics(ctx.val_soc_gkg, np.expm1(ctx.scaler.inverse(soc_v)))
    return {"val_loss": float(val_loss), "val_nll": float(nll), **{f"val_{k}": x for k, x in m.items()}}


def _seed_batches(ctx: GraphContext, batch_size: int, gen: torch.Generator) -> Iterator[Tensor]:
    """Endless mini-batches of training seed nodes: each pass over the training nodes in a fresh order."""
    n = len(ctx.train_idx)
    while True:
        order = ctx.train_idx[torch.randperm(n, generator=gen).to(ctx.device)]
        yield from torch.split(order, batch_size)


def _step_losses(model: SpTGNN, ctx: GraphContext, cfg: PipelineConfig, mode: str, loss_nodes: Tensor, epoch: int,
                 delta: float, gen: torch.Generator, graph: HeteroGraph | None = None) -> dict[str, Tensor]:
    """Forward pass and the eq. (3) losses of one optimiser step on ``loss_nodes`` (whose labels are hidden);
    full-graph mode on ``graph`` (a block-masked variant) instead of the training graph when given."""
    label_feats = None
    if mode == "full":
        nodes, graph, local = None, ctx.graph if graph is None else graph, loss_nodes
        inputs, y, moran = ctx.inputs, ctx.y_train, ctx.moran
    else:
        fan = cfg.train.fanouts
        if fan is None:
            nodes, graph, local = khop_subgraph(ctx, loss_nodes, len(model.layers))
        else:
            nodes, graph, local = sample_subgraph(ctx, loss_nodes, fan, gen)
        inputs = ctx.inputs.index(nodes)
        y, moran = ctx.y_train[nodes], ctx.moran[nodes]
        if ctx.label_input:  # on the whole graph: the subgraph lacks its outermost nodes' spatial in-edges
            hidden = ctx.y_train.clone()
            hidden[loss_nodes] = float("nan")
            label_feats = model.graph_label_features(replace(ctx.inputs, label=hidden), ctx.graph)
            assert label_feats is not None
            label_feats = label_feats[nodes]
    mask = torch.zeros(graph.num_nodes, dtype=torch.bool, device=ctx.device)
    mask[local] = True
    if ctx.label_input and label_feats is None:
        label = y.clone()
        label[local] = float("nan")  # the loss nodes' own labels never reach any input
        inputs = replace(inputs, label=label)
    out = model(inputs, graph, label_feats=label_feats)
    return total_loss(out, y, moran, mask, epoch=epoch, cfg=cfg.train, huber_delta=delta)


def pick_mode(cfg: PipelineConfig, num_nodes: int) -> str:
    mode = cfg.train.mode
    if mode == "auto":
        return "full" if num_nodes <= cfg.train.full_graph_max_nodes else "minibatch"
    return mode


def _masked_variants(ctx: GraphContext, cfg: PipelineConfig, mode: str) -> list[MaskedGraph]:
    """The block-masked graphs a member's steps may use (none unless ``train.mask_block_km``); ModelError on an
    option the step kind cannot honour."""
    tc = cfg.train
    if ctx.label_input and tc.loss_fraction >= 1.0 and mode == "full":
        raise ModelError("model.label_input needs train.loss_fraction < 1: the loss nodes' labels are hidden, "
                         "the other training labels are the visible inputs")
    if tc.mask_block_km is not None and mode != "full":
        raise ModelError("train.mask_block_km (block-masked steps) needs train.mode: full")
    return ctx.masked if tc.mask_block_km is not None else []


def _check_fanouts(cfg: PipelineConfig, mode: str, hops: int) -> None:
    fanouts = cfg.train.fanouts
    if mode == "minibatch" and fanouts is not None and len(fanouts) != hops:
        raise ModelError(f"train.fanouts has {len(fanouts)} entries; the model has {hops} RGAT layers: give "
                         "one fan-out per layer")


@dataclass
class _LossNodes:
    """Draws the loss nodes of each optimiser step of one member, from the member's generator ``gen``: a
    block-masked variant's held-out nodes (with probability ``train.mask_block_steps``), else a fresh random
    ``train.loss_fraction`` of the training nodes (full graph) or the next mini-batch of seeds."""

    ctx: GraphContext
    mode: str
    masked: list[MaskedGraph]
    n_loss: int
    mask_block_steps: float
    gen: torch.Generator
    batches: Iterator[Tensor]

    def draw(self) -> tuple[HeteroGraph | None, Tensor]:
        """``(graph, loss_nodes)``: the graph of a block-masked step (None: the training graph)."""
        if self.masked and float(torch.rand(1, generator=self.gen)) < self.mask_block_steps:
            variant = self.masked[int(torch.randint(len(self.masked), (1,), generator=self.gen))]
            return variant.graph, variant.held
        if self.mode == "full":
            n_train = len(self.ctx.train_idx)
            perm = torch.randperm(n_train, generator=self.gen)[:self.n_loss].to(self.ctx.device)
            return None, self.ctx.train_idx[perm]
        return None, next(self.batches)


@dataclass
class _Selection:
    """Early stopping on the validation ``metric`` (lower is better): the best round so far and its weights."""

    metric: str
    score: float = math.inf
    epoch: int = -1
    val: dict[str, float] = field(default_factory=dict)
    stale: int = 0
    """Rounds since the best one."""
    state: dict[str, Tensor] | None = None

    def update(self, epoch: int, val: dict[str, float], model: SpTGNN) -> None:
        if val[self.metric] < self.score:
            self.score, self.epoch, self.val, self.stale = val[self.metric], epoch, val, 0
            self.state = copy.deepcopy(model.state_dict())
        else:
            self.stale += 1


def _train_round(model: SpTGNN, ctx: GraphContext, cfg: PipelineConfig, mode: str, opt: torch.optim.Optimizer,
                 draws: _LossNodes, steps: int, epoch: int, delta: float) -> dict[str, float]:
    """``steps`` optimiser steps; the round's mean of each loss term (``loss``, ``main``, ``autocorr``, ``moe``)."""
    model.train()
    parts: dict[str, float] = {"loss": 0.0, "main": 0.0, "autocorr": 0.0, "moe": 0.0}
    for _ in range(steps):
        step_graph, loss_nodes = draws.draw()
        losses = _step_losses(model, ctx, cfg, mode, loss_nodes, epoch, delta, draws.gen, step_graph)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step()
        for k in parts:
            parts[k] += float(losses[k].detach()) / steps
    return parts


def _progress_bar(progress: bool, total: int, desc: str, mode: str) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="round" if mode == "minibatch" else "epoch", leave=False)


def _stop_reason(cfg: PipelineConfig, sel: _Selection, t0: float) -> str | None:
    """``early stopping`` (``train.early_stop_patience`` rounds without a better one), ``time budget``
    (``train.max_minutes`` spent: a safety net, so a busy machine cannot train forever) or None (go on)."""
    tc = cfg.train
    if sel.stale >= tc.early_stop_patience:
        return "early stopping"
    if tc.max_minutes is not None and time.perf_counter() - t0 > 60.0 * tc.max_minutes:
        return "time budget"
    return None


def train_member(ctx: GraphContext, cfg: PipelineConfig, tabular_dim: int, image_dim: int, seed: int, *,
                 train_years: np.ndarray | None = None, progress: bool = True, desc: str = "member",
                 epochs: int | None = None,
                 on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> MemberResult:
    """Train one member from seed ``seed`` (initialisation, dropout, loss-node draws and batch order).

    ``on_epoch(epoch, row)`` is called after every epoch with that epoch's log row (``val_mape`` %, ``val_r2``,
    ``val_rmse`` g/kg, ...): a hyper-parameter search reports to its pruner there, and an exception it raises
    (e.g. ``optuna.TrialPruned``) stops the training and propagates.
    """
    tc = cfg.train
    mode = pick_mode(cfg, ctx.graph.num_nodes)
    masked = _masked_variants(ctx, cfg, mode)
    model = build_model(cfg, tabular_dim, image_dim, seed, train_years).to(ctx.device)
    _check_fanouts(cfg, mode, len(model.layers))
    gen = torch.Generator(device="cpu").manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.learning_rate, weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=tc.lr_patience)
    n_train = len(ctx.train_idx)
    draws = _LossNodes(ctx, mode, masked, max(1, math.ceil(tc.loss_fraction * n_train)), tc.mask_block_steps, gen,
                       _seed_batches(ctx, tc.batch_size, gen))
    delta = cfg.model.huber_delta / ctx.scaler.sd  # huber_delta is in log(1+SOC) units
    history: list[dict[str, float]] = []
    sel = _Selection(f"val_{tc.select_metric}")
    n_epochs = epochs or tc.epochs
    steps = tc.val_every_steps or (1 if mode == "full" else math.ceil(n_train / tc.batch_size))
    t0 = time.perf_counter()
    bar = _progress_bar(progress, n_epochs, desc, mode)
    stopped_by = "epoch bound"
    try:
        for epoch in range(n_epochs):
            te = time.perf_counter()
            parts = _train_round(model, ctx, cfg, mode, opt, draws, steps, epoch, delta)
            val = _val_scores(model, ctx, epoch, cfg)
            sched.step(val["val_loss"])
            row = {"epoch": epoch, "lr": opt.param_groups[0]["lr"], **{f"train_{k}": v for k, v in parts.items()},
                   **val, "seconds": time.perf_counter() - te, "elapsed": time.perf_counter() - t0}
            history.append(row)
            sel.update(epoch, val, model)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{parts['loss']:.3f}", val_rmse=f"{val['val_rmse']:.2f}",
                                val_mape=f"{val['val_mape']:.1f}", best=sel.epoch)
            if on_epoch is not None:
                on_epoch(epoch, row)
            reason = _stop_reason(cfg, sel, t0)
            if reason is not None and epoch + 1 < n_epochs:
                stopped_by = reason
                break
    finally:
        if bar is not None:
            bar.close()
    if sel.state is not None:
        model.load_state_dict(sel.state)
    model.eval()
    return MemberResult(model, seed, history, sel.epoch, sel.val, time.perf_counter() - t0, mode, stopped_by)
