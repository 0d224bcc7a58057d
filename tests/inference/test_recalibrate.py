"""The calibration train stores, and ``socmap calibrate`` refitting it without retraining."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from socmap.cli import cli
from socmap.inference import load_bundle
from tests.inference.test_bundle import _new_points
from tests.train.conftest import tiny_pipeline


def test_calibration_is_fitted_stored_and_refitted_without_retraining(syn_bundle: Path, syn_data: Path,
                                                                      tmp_path: Path) -> None:
    """train stores what fit_calibration fits on the validation sites (T, distance term, mean cap, tail shape);
    `socmap calibrate` refits the same from the stored node outputs (idempotent on a current bundle), restores a
    bundle whose calibration keys are missing or stale, and leaves the weights alone; predictions apply the tails."""
    from socmap.data.split import SPLIT_CODES
    from socmap.inference import fit_calibration

    b = load_bundle(syn_bundle, tiny_pipeline())
    s = pd.read_parquet(syn_data / "samples.parquet")
    cal, cal_val = fit_calibration(b.node_member_mean, b.node_member_var, s.soc_gkg.to_numpy(), b.node_lonlat,
                                   b.node_split == SPLIT_CODES["train"], b.node_split == SPLIT_CODES["val"],
                                   seed=b.info.seeds[0])
    stored = json.loads((syn_bundle / "bundle.json").read_text())
    assert {k: stored[k] for k in cal.to_info()} == cal.to_info() and b.calibration == cal
    assert b.tail_dof == cal.tail_dof and b.predict_nodes().tail_dof == cal.tail_dof
    assert len(cal_val) == int((s.split == "val").sum())

    copy = tmp_path / "model"
    shutil.copytree(syn_bundle, copy)
    info = json.loads((copy / "bundle.json").read_text())
    stale = {**info, "temperature": 9.0, "tail_dof": 3.0}
    del stale["mean_var_cap"]
    (copy / "bundle.json").write_text(json.dumps(stale))
    assert load_bundle(copy).tail_dof == 3.0
    weights = (copy / "members/00/weights.safetensors").read_bytes()
    res = CliRunner().invoke(cli, ["calibrate", "--data", str(syn_data), "--model", str(copy)])
    assert res.exit_code == 0, res.output
    assert "calibrate: T" in res.output and res.output.count("\n") == 1
    assert json.loads((copy / "bundle.json").read_text()) == info  # every key back as train wrote it
    assert json.loads((copy / "model_card.json").read_text())["temperature"] == info["temperature"]
    assert f"{info['temperature']:.4f}" in (copy / "MODEL_CARD.md").read_text()
    assert (copy / "members/00/weights.safetensors").read_bytes() == weights
    assert not list(copy.glob(".*"))  # no temporary left behind
    # a Gaussian-tailed bundle (written before tails existed) predicts Gaussian quantiles
    del info["tail_dof"]
    (copy / "bundle.json").write_text(json.dumps(info))
    old = load_bundle(copy)
    assert old.tail_dof is None and old.predict_nodes().tail_dof is None
    args = _new_points(syn_data)
    assert load_bundle(syn_bundle).predict_new(*args[:3], None, *args[3:]).tail_dof == cal.tail_dof

def test_cli_calibrate_bad_input_is_one_line(syn_bundle: Path, syn_data: Path, tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(syn_bundle, copy)
    before = (copy / "bundle.json").read_text()
    other = tmp_path / "other"
    other.mkdir()
    s = pd.read_parquet(syn_data / "samples.parquet")
    s.assign(sample_id=s.sample_id + "x").to_parquet(other / "samples.parquet")
    for args in (["--data", str(tmp_path / "nowhere")], ["--data", str(other)]):
        res = CliRunner().invoke(cli, ["calibrate", "--model", str(copy), *args])
        assert res.exit_code == 2 and res.output.startswith("socmap: error:") and res.output.count("\n") == 1
    res = CliRunner().invoke(cli, ["calibrate", "--model", str(tmp_path / "none"), "--data", str(syn_data)])
    assert res.exit_code == 2 and "model bundle" in res.output
    assert (copy / "bundle.json").read_text() == before


def test_calibrate_stage_and_its_pipeline_options(syn_bundle: Path, syn_data: Path, tmp_path: Path) -> None:
    """``socmap.inference.recalibrate.run`` is the stage the command prints the summary of; the command checks the
    bundle against ``--region`` / ``--pipeline`` when given (the bundle's own pipeline otherwise)."""
    import yaml

    from socmap.inference import recalibrate
    from socmap.inference.format import resolved_pipeline_dict

    copy = tmp_path / "model"
    shutil.copytree(syn_bundle, copy)
    res = recalibrate.run(tiny_pipeline(), syn_data, copy, progress=False)
    assert res.path == copy and res.calibration == load_bundle(syn_bundle).calibration
    assert res.summary().startswith("calibrate: T ") and res.summary().endswith(f"-> {copy}")
    assert set(res.validation) >= {"rmse", "mae", "r2", "mape", "nll", "picp95"}
    pf = tmp_path / "p.yaml"
    pf.write_text(yaml.safe_dump(resolved_pipeline_dict(tiny_pipeline())))
    out = CliRunner().invoke(cli, ["calibrate", "--data", str(syn_data), "--model", str(copy), "--pipeline", str(pf)])
    assert out.exit_code == 0 and out.output == res.summary() + "\n"
    other = CliRunner().invoke(cli, ["calibrate", "--data", str(syn_data), "--model", str(copy), "--region", "demo"])
    assert other.exit_code == 2 and "differ from pipeline" in other.output and other.output.count("\n") == 1
