"""The stored stage fixtures (tests/data) load with the real readers and agree with each other; the stored bundle
is the one tests/data/bundle/data.py trains and still predicts with this code."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from socmap.data import TARGET, Preprocessor, read_samples
from socmap.encoders import load_embeddings
from socmap.eo import MODALITIES, open_patches
from tests.data import BUNDLE, copy_stored_bundle


def test_stored_stages_chain(stored_data: Path) -> None:
    samples = read_samples(stored_data, required=(*TARGET, "lon", "lat", "year"))
    pre = Preprocessor.load(stored_data)
    feats = pre.transform(samples)
    np.testing.assert_allclose(feats.to_numpy(), samples[[f"feat_{c}" for c in feats.columns]].to_numpy())
    store = open_patches(stored_data, list(MODALITIES))
    assert store.sample_id.tolist() == samples.sample_id.tolist()
    assert store.ok.tolist() == [True, True, True, False, True, True]
    assert store.year.tolist() == samples.year.tolist()
    assert store.imagery_year[0] == 2022 and samples.year[0] == 2015  # older than the archive
    x = store.read(np.array([1, 2]))
    assert x["S2L2A"].shape == (2, 11, 32, 32) and np.isnan(x["S2L2A"][0, :, :4, :4]).all()
    emb = load_embeddings(stored_data)
    vecs, ok = emb.aligned(samples.sample_id.to_numpy())
    assert vecs.shape == (6, 192) and ok.tolist() == store.ok.tolist() and np.isfinite(vecs[ok]).all()


def test_stored_bundle_is_the_scripted_one_and_predicts(tmp_path: Path) -> None:
    """Training stamps its time, so the bundle's checksums change on every run: check what data.py fixes (format,
    members and seeds, the world's pipeline, one node per stored sample) and that the stored weights reproduce the
    stored node outputs, the numbers evaluate scores, with this code (a model or format change that makes the
    stored bundle stale fails here: rerun tests/data/bundle/data.py)."""
    import torch

    from socmap.config import load_pipeline
    from socmap.data.split import SPLIT_CODES
    from socmap.inference import BUNDLE_FORMAT, load_bundle
    from tests.data.bundle.data import MEMBERS, SEED
    from tests.mapping.world import write_map_world

    size = sum(p.stat().st_size for p in BUNDLE.rglob("*") if p.is_file() and p.suffix != ".py")
    assert size < 2_000_000  # a stored fixture stays small
    data, model = copy_stored_bundle(tmp_path / "stored")
    cfg = load_pipeline(write_map_world(tmp_path / "world")["pipeline"])
    b = load_bundle(model, cfg)  # covariates, streams and relations agree with the world's pipeline
    assert b.info.format == BUNDLE_FORMAT
    assert b.n_members == MEMBERS == 2 and b.info.seeds == [SEED, SEED + 1]
    assert b.pipeline.model == cfg.model and b.pipeline.train == cfg.train
    samples = read_samples(data, required=(*TARGET, "lon", "lat", "year", "split"))
    n = len(samples)
    assert b.sample_id == samples.sample_id.tolist() and b.info.num_nodes == n == 240
    assert b.feature_columns == Preprocessor.load(data).feature_names == list(Preprocessor.load(model).feature_names)
    assert b.node_member_mean.shape == b.node_member_var.shape == (MEMBERS, n)
    assert (b.node_split == SPLIT_CODES["train"]).sum() == (samples.split == "train").sum()
    assert b.node_inputs is not None and b.node_inputs.label is None  # no label trick in this pipeline
    with torch.no_grad():
        for m, member in enumerate(b.members):
            out = member(b.node_inputs, b.graph)
            np.testing.assert_allclose(b.scaler.inverse(out.soc.double().numpy()), b.node_member_mean[m],
                                       rtol=0, atol=1e-4)
    soc = b.predict_nodes().mean_gkg()
    assert np.isfinite(soc).all() and (soc > 0).all()
