#!/usr/bin/env python3
"""Write a tiny ``train`` output here: model/ (a 2-member bundle) and data/ (the prepared data it was trained on).

The world is the mapping tests' (``tests/mapping/world.py``: 240 survey sites, four covariate rasters), written
to a temporary folder, prepared by ``socmap.data.prepare`` and trained by ``socmap.train.train`` with that
world's pipeline (widths 16/8, 2 experts, 4 epochs, 2 members from seed 0, CPU): the bundle the mapping tests
trained in their session fixture before it was stored. The evaluate, predict and aggregate tests load it
(``tests.data.copy_stored_bundle``) instead of training one.

Seeded; on one machine a rerun writes the same weights, layer caches, node outputs, graph and data (checked),
but not the same bundle.json, model card and logs: training stamps its time (``created``, ``training_seconds``,
seconds per epoch). The paths the bundle records are those of the removed work folder :data:`WORK` (predict
reads the covariates from the pipeline it is given). tests/test_stored_data.py checks what can be checked: format,
pipeline, shapes, and that the stored weights still reproduce the stored node outputs with this code. Rerun this
script after a change to the bundle format or the model.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from socmap.config import load_pipeline  # noqa: E402
from socmap.data import prepare  # noqa: E402
from socmap.io import PREPROCESS, PREPROCESS_REFERENCE, SAMPLES, atomic_path  # noqa: E402
from socmap.train import stage as train  # noqa: E402
from tests.data import print_checksums  # noqa: E402
from tests.mapping.world import write_map_world  # noqa: E402

MEMBERS = 2
SEED = 0
DATA_FILES = (SAMPLES, PREPROCESS, PREPROCESS_REFERENCE)
"""What evaluate and train read from a prepared folder (prepare_report.json stays out: it stamps the time)."""


WORK = Path(tempfile.gettempdir()) / "socmap-bundle-fixture"
"""Where the world is written and the bundle trained (removed after): a fixed name, so the paths the bundle
records (pipeline.yaml, preprocess.json) are the same on every run on one machine."""


def main() -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    try:
        world = write_map_world(WORK / "world")
        cfg = load_pipeline(world["pipeline"])
        prepare.run(cfg, None, WORK / "data", progress=False)
        train.run(cfg, WORK / "data", WORK / "model", members=MEMBERS, device="cpu", seed=SEED, progress=False)
        with atomic_path(HERE / "data") as tmp:
            tmp.mkdir()
            for name in DATA_FILES:
                shutil.copyfile(WORK / "data" / name, tmp / name)
        with atomic_path(HERE / "model") as tmp:
            shutil.copytree(WORK / "model", tmp)
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    print_checksums(HERE)


if __name__ == "__main__":
    main()
