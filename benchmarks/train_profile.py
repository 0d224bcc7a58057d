"""Benchmark: where one SpTGNN training step goes, module by module, on the real Africa graph (CPU).

Prepares the samples with the ``africa-coarse`` pipeline (Table 6 widths [512, 256, 128, 64], MoE 8 experts,
fusion 512, label input on) into a temporary folder, builds the training context as ``socmap train`` does
(:func:`socmap.train.stage.training_context`, :func:`socmap.train.trainer.build_model`), then times training steps:
forward of every module (forward pre/post hooks, ``time.perf_counter``; torch CPU ops are synchronous), the losses
(``total_loss``), the backward pass (total, and per module: from the module's backward pre-hook to the last of its
input-gradient hook and its parameters' gradient accumulation), gradient clipping, the AdamW step and the
validation pass (``_val_scores``, every epoch in ``train_member``). One step is warm-up; the figures are means
over ``--steps``. ``--mode minibatch`` times the trainer's ``khop_subgraph`` batches of ``--batch-size`` seeds.

Usage::

    python benchmarks/train_profile.py                       # full graph, 3 steps
    python benchmarks/train_profile.py --steps 2 --data /tmp/africa-data
    python benchmarks/train_profile.py --mode minibatch --batch-size 32 --steps 10

Prints a table of seconds per module (largest first; wall clock, or this process's CPU time with ``--clock cpu``)
and, last, one JSON line: step_seconds, modules {name: seconds}, backward_seconds, backward_modules,
optimizer_seconds, val_seconds, nodes, edges (of the step's graph), mode, threads, and step_wall_seconds,
step_cpu_seconds, cpu_share (CPU time over threads x wall time: on a shared machine a share well below 1 says the
wall times are inflated by other jobs).
Goal (issue 18): know where a step's time goes before making steps cheaper; a full-graph step was 13.6 s.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Clock:
    """Per-name seconds of the current step: forward via module hooks or wrapped methods, backward windows."""

    def __init__(self, now) -> None:
        self.now = now
        self.on = False
        self.fwd: dict[str, float] = defaultdict(float)
        self.bwd_start: dict[str, float] = {}
        self.bwd_end: dict[str, float] = {}
        self._t0: dict[str, float] = {}

    def forward_hooks(self, name: str, module) -> None:
        def pre(_m, _a) -> None:
            self._t0[name] = self.now()

        def post(_m, _a, _o) -> None:
            if self.on:
                self.fwd[name] += self.now() - self._t0[name]

        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post)

    def wrap_method(self, obj, attr: str, name: str) -> None:
        fn = getattr(obj, attr)

        def timed(*a, **k):
            t = self.now()
            out = fn(*a, **k)
            if self.on:
                self.fwd[name] += self.now() - t
            return out

        setattr(obj, attr, timed)

    def backward_hooks(self, name: str, module) -> None:
        def start(_m, _g) -> None:
            if self.on:
                self.bwd_start.setdefault(name, self.now())

        def end(*_a) -> None:
            if self.on:
                self.bwd_end[name] = max(self.bwd_end.get(name, -math.inf), self.now())

        module.register_full_backward_pre_hook(start)
        module.register_full_backward_hook(end)
        for p in module.parameters():
            p.register_post_accumulate_grad_hook(end)

    def backward_windows(self) -> dict[str, float]:
        return {k: self.bwd_end[k] - t for k, t in self.bwd_start.items() if k in self.bwd_end}

    def reset(self) -> None:
        self.fwd.clear()
        self.bwd_start.clear()
        self.bwd_end.clear()


def instrument(model, clock: Clock) -> list[str]:
    """Hook the model's stages; returns the top-level forward names whose sum is compared with the forward total."""
    fusion = model.fusion
    mods = {"pos_encoder": getattr(model, "pos_encoder", None), "time_encoder": getattr(model, "time_encoder", None),
            "pre_mlp": model.pre_mlp, "post_mlp": model.post_mlp,
            **{f"rgat.{i}": m for i, m in enumerate(model.layers)},
            **{f"moe.expert{i}": m for i, m in enumerate(getattr(fusion, "experts", []))}}
    mods = {k: m for k, m in mods.items() if m is not None}
    for name, m in mods.items():
        clock.forward_hooks(name, m)
        clock.backward_hooks(name, m)
    for prefix, obj, names in (("moe.router", fusion, ("route_norm", "gate")),
                               ("heads", model, ("head_soc", "head_moran", "head_logvar"))):
        for name in names:
            if getattr(obj, name, None) is not None:
                clock.backward_hooks(f"{prefix}.{name}", getattr(obj, name))
    clock.forward_hooks("fusion", fusion)
    clock.wrap_method(model, "graph_label_features", "label_features")
    clock.wrap_method(model, "readout", "readout")
    if hasattr(fusion, "route"):
        clock.wrap_method(fusion, "route", "moe.router")
    return ["label_features", "fusion", "pre_mlp", "readout",
            *[k for k in mods if k.endswith("_encoder") or k.startswith("rgat.")]]


def summarise_forward(fwd: dict[str, float], top: list[str], forward_total: float) -> dict[str, float]:
    """Group the raw hook times: experts summed, fusion split into router / experts / the rest, readout into
    Post-MLP and heads, and what no hook covered (``forward.other``)."""
    out = {k: v for k, v in fwd.items() if not k.startswith("moe.expert") and k not in ("fusion", "readout")}
    experts = sum(v for k, v in fwd.items() if k.startswith("moe.expert"))
    out["moe.experts"] = experts
    out["moe.other"] = fwd.get("fusion", 0.0) - experts - fwd.get("moe.router", 0.0)
    out["heads"] = fwd.get("readout", 0.0) - fwd.get("post_mlp", 0.0)
    out["forward.other"] = forward_total - sum(fwd.get(k, 0.0) for k in top)
    return out


def group_backward(win: dict[str, float], total: float) -> dict[str, float]:
    """Backward windows grouped like the forward names, and the autograd time outside every window."""
    out: dict[str, float] = defaultdict(float)
    for k, v in win.items():
        if k.startswith("moe.expert"):
            k = "moe.experts"
        elif k.startswith(("moe.router.", "heads.")):
            k = k.rsplit(".", 1)[0]
        out[k] += v
    out["backward.other"] = total - sum(out.values())
    return dict(out)


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipeline", default="africa-coarse", help="shipped region or pipeline YAML")
    ap.add_argument("--data", type=Path, default=None, help="reuse a prepared data folder (default: prepare now)")
    ap.add_argument("--mode", choices=["full", "minibatch"], default="full")
    ap.add_argument("--batch-size", type=int, default=None, help="seeds per mini-batch (default: the pipeline's)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    ap.add_argument("--epoch", type=int, default=None,
                    help="epoch the loss sees (default: warm_start_epochs, so the hybrid loss has its NLL term)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="time modules by wall clock (default) or by this process's CPU time (all threads: "
                         "less sensitive to other jobs on a shared machine, but not seconds of waiting)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import torch

    from socmap.config import load_pipeline
    from socmap.train.inputs import load_training_data
    from socmap.train.losses import total_loss
    from socmap.train.stage import training_context
    from socmap.train.trainer import _val_scores, build_model, khop_subgraph

    if args.threads:
        torch.set_num_threads(args.threads)
    # expected for the encoders, whose inputs need no gradient: their window ends at their parameters' gradients
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    p = Path(args.pipeline)
    cfg = load_pipeline(p if p.suffix in (".yaml", ".yml") else args.pipeline)
    tc = cfg.train
    epoch = tc.warm_start_epochs if args.epoch is None else args.epoch
    batch_size = args.batch_size or tc.batch_size
    with tempfile.TemporaryDirectory(prefix="train-profile-") as tmp:
        data_dir = args.data
        if data_dir is None:
            from socmap.data import prepare

            data_dir = Path(tmp) / "data"
            t = time.perf_counter()
            prepare.run(cfg, None, data_dir, progress=False)
            print(f"prepared {data_dir} in {time.perf_counter() - t:.1f} s", flush=True)
        t = time.perf_counter()
        data, _pre, _src = load_training_data(data_dir, cfg)
        dev = torch.device("cpu")
        _graph, ctx = training_context(data, cfg, dev)
        setup_s = time.perf_counter() - t
    train_years = data.year[data.mask("train")]
    tab_dim = 0 if data.tabular is None else data.tabular.shape[1]
    img_dim = 0 if data.image is None else data.image.shape[1]
    model = build_model(cfg, tab_dim, img_dim, tc.seed, train_years).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.learning_rate, weight_decay=tc.weight_decay)
    n_params = sum(q.numel() for q in model.parameters())
    print(f"graph + context {setup_s:.1f} s: {ctx.graph.num_nodes} nodes, {ctx.graph.edge_index.shape[1]} edges "
          f"({', '.join(ctx.graph.relations)}); {n_params:,} parameters; {torch.get_num_threads()} threads",
          flush=True)
    now = time.perf_counter if args.clock == "wall" else time.process_time
    clock = Clock(now)
    top = instrument(model, clock)
    gen = torch.Generator().manual_seed(tc.seed)
    n_train = len(ctx.train_idx)
    delta = cfg.model.huber_delta / ctx.scaler.sd

    def batch():
        """One step's inputs as train_member builds them: loss nodes' labels hidden (NaN)."""
        if args.mode == "full":
            local = ctx.train_idx[torch.randperm(n_train, generator=gen)[:max(1, math.ceil(tc.loss_fraction
                                                                                           * n_train))]]
            inputs, graph, y, moran = ctx.inputs, ctx.graph, ctx.y_train, ctx.moran
        else:
            seeds = ctx.train_idx[torch.randperm(n_train, generator=gen)[:batch_size]]
            nodes, graph, local = khop_subgraph(ctx, seeds, len(model.layers))
            inputs, y, moran = ctx.inputs.index(nodes), ctx.y_train[nodes], ctx.moran[nodes]
        mask = torch.zeros(graph.num_nodes, dtype=torch.bool)
        mask[local] = True
        if ctx.label_input:
            label = y.clone()
            label[local] = float("nan")
            inputs = replace(inputs, label=label)
        return inputs, graph, y, moran, mask

    rows: list[dict[str, float]] = []
    sizes: list[tuple[int, int]] = []
    for step in range(args.steps + 1):
        clock.reset()
        clock.on = step > 0
        model.train()
        w0, c0, t0 = time.perf_counter(), time.process_time(), now()
        inputs, graph, y, moran, mask = batch()
        t1 = now()
        out = model(inputs, graph)
        t2 = now()
        losses = total_loss(out, y, moran, mask, epoch=epoch, cfg=tc, huber_delta=delta)
        t3 = now()
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        t4 = now()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        t5 = now()
        opt.step()
        t6, w6, c6 = now(), time.perf_counter(), time.process_time()
        clock.on = False
        val = _val_scores(model, ctx, epoch, cfg)
        t7 = now()
        print(f"step {step}{' (warm-up)' if step == 0 else ''}: {t6 - t0:.2f} s + validation {t7 - t6:.2f} s, "
              f"loss {float(losses['loss'].detach()):.4f}, val RMSE {val['val_rmse']:.2f} g/kg", flush=True)
        if step == 0:
            continue
        sizes.append((graph.num_nodes, int(graph.edge_index.shape[1])))
        row = summarise_forward(clock.fwd, top, t2 - t1)
        row.update({"sample": t1 - t0, "forward": t2 - t1, "loss": t3 - t2, "backward": t4 - t3,
                    "grad_clip": t5 - t4, "optimizer": t6 - t5, "val": t7 - t6, "step": t6 - t0,
                    "wall": w6 - w0, "cpu": c6 - c0})
        row.update({f"bwd:{k}": v for k, v in group_backward(clock.backward_windows(), t4 - t3).items()})
        rows.append(row)
    mean = {k: sum(r.get(k, 0.0) for r in rows) / len(rows) for k in rows[0]}
    totals = ("forward", "backward", "optimizer", "val", "step", "wall", "cpu")
    modules = {k: v for k, v in mean.items() if k not in totals and not k.startswith("bwd:")}
    if args.mode == "full":
        modules.pop("sample")
    bwd = {k[4:]: v for k, v in mean.items() if k.startswith("bwd:")}
    print(f"\nmean over {len(rows)} step(s), {args.mode} graph ({sizes[-1][0]} nodes, {sizes[-1][1]} edges in the "
          "last step's graph); seconds and share of the step")
    print(f"{'forward module':<22}{'s':>9}{'%':>7}    {'backward module':<22}{'s':>9}{'%':>7}")
    fw = sorted(modules.items(), key=lambda kv: -kv[1])
    bw = sorted(bwd.items(), key=lambda kv: -kv[1])
    for i in range(max(len(fw), len(bw))):
        left = f"{fw[i][0]:<22}{fw[i][1]:9.3f}{100 * fw[i][1] / mean['step']:7.1f}" if i < len(fw) else " " * 38
        right = f"{bw[i][0]:<22}{bw[i][1]:9.3f}{100 * bw[i][1] / mean['step']:7.1f}" if i < len(bw) else ""
        print(f"{left}    {right}")
    print(f"forward {mean['forward']:.3f} s, backward {mean['backward']:.3f} s, clip {mean['grad_clip']:.3f} s, "
          f"AdamW {mean['optimizer']:.3f} s: step {mean['step']:.3f} s; validation pass {mean['val']:.3f} s")
    share = mean["cpu"] / (mean["wall"] * torch.get_num_threads())
    print(f"{args.clock} clock; a step took {mean['wall']:.2f} s wall and {mean['cpu']:.2f} s process CPU time: "
          f"{100 * share:.0f} % of {torch.get_num_threads()} thread(s) x wall (well below 100 %: the cores were "
          "shared and wall times are inflated)")

    def r(x: float) -> float:
        return round(x, 4)

    result = {
        "step_seconds": r(mean["step"]), "clock": args.clock, "step_wall_seconds": r(mean["wall"]),
        "step_cpu_seconds": r(mean["cpu"]), "cpu_share": round(share, 3),
        "forward_seconds": r(mean["forward"]),
        "modules": {k: r(v) for k, v in fw}, "backward_seconds": r(mean["backward"]),
        "backward_modules": {k: r(v) for k, v in bw}, "optimizer_seconds": r(mean["optimizer"]),
        "val_seconds": r(mean["val"]), "nodes": sizes[-1][0], "edges": sizes[-1][1],
        "graph_nodes": ctx.graph.num_nodes, "graph_edges": int(ctx.graph.edge_index.shape[1]), "mode": args.mode,
        "batch_size": batch_size if args.mode == "minibatch" else None, "steps": len(rows),
        "threads": torch.get_num_threads(), "parameters": n_params, "setup_seconds": round(setup_s, 1),
        "widths": list(cfg.model.rgat.hidden_dims), "experts": cfg.model.moe.experts,
        "fusion_dim": cfg.model.moe.fusion_dim, "label_input": cfg.model.label_input,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
