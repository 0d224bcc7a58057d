"""The stored stage fixtures (tests/data) load with the real readers and agree with each other."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from socmap.data import TARGET, Preprocessor, read_samples
from socmap.encoders import load_embeddings
from socmap.eo import MODALITIES, open_patches


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
