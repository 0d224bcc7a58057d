"""socmap tune: the search space and its narrowing, the test split never read by a trial, and a small two-step
search on 2 Dask workers that resumes, writes its outputs and a best pipeline that loads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from socmap.cli import cli
from socmap.config import PipelineConfig, TuneConfig, TuneParam, get_dotted, load_pipeline
from socmap.errors import ConfigError
from socmap.io import (
    TUNE_BEST_PIPELINE,
    TUNE_IMPORTANCE,
    TUNE_REPORT_JSON,
    TUNE_REPORT_MD,
    TUNE_SLICES,
    TUNE_STUDY,
    TUNE_TRIALS,
)
from socmap.tune import stage as tune
from socmap.tune.objective import open_storage, train_once
from socmap.tune.search import split_trials
from socmap.tune.space import apply_params, distributions, encode, narrow_space
from tests.train.conftest import make_data_dir, tiny_pipeline

SPACE = {
    "train.learning_rate": {"low": 1e-3, "high": 2e-2, "log": True},
    "model.rgat.hidden_dims": {"choices": [[16, 8], [8]]},
    "model.moe.expert_type": {"choices": ["cross-gated", "concat", "additive"]},
    "model.rgat.dropout": {"low": 0.0, "high": 0.3},
}


def small_search(**kw: object) -> PipelineConfig:
    cfg = tiny_pipeline(epochs=4)
    cfg.tune = TuneConfig.model_validate({
        "wide_trials": 3, "narrow_trials": 2, "epochs": 4, "startup_trials": 2, "final_members": 1,
        "final_epochs": 4, "pruner": {"kind": "median", "startup_trials": 1, "warmup_epochs": 1}, "space": SPACE,
        **kw})
    return cfg


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_data_dir(tmp_path_factory.mktemp("tune") / "data", n=200)


def test_space_distributions_apply_and_narrow() -> None:
    space = {k: TuneParam.model_validate(v) for k, v in SPACE.items()}
    dist = distributions(space)
    assert dist["model.rgat.hidden_dims"].choices == ("[16, 8]", "[8]")  # lists travel as JSON text
    assert dist["train.learning_rate"].log
    cfg = apply_params(tiny_pipeline(), space, {"model.rgat.hidden_dims": "[8]", "train.learning_rate": 4e-3})
    assert cfg.model.rgat.hidden_dims == [8] and cfg.train.learning_rate == pytest.approx(4e-3)
    top = [{"model.rgat.hidden_dims": "[8]", "model.moe.expert_type": "concat", "train.learning_rate": 2e-3,
            "model.rgat.dropout": 0.1},
           {"model.rgat.hidden_dims": "[8]", "model.moe.expert_type": "additive", "train.learning_rate": 8e-3,
            "model.rgat.dropout": 0.1}]
    nar = narrow_space(space, top)
    assert nar["model.rgat.hidden_dims"].choices == [[8]]
    assert nar["model.moe.expert_type"].choices == ["concat", "additive"]  # declared order kept
    lr = nar["train.learning_rate"]  # [2e-3, 8e-3] padded by 10 % of its log span, inside the declared range
    assert lr.log and 1e-3 <= lr.low < 2e-3 and 8e-3 < lr.high <= 2e-2
    assert lr.low == pytest.approx(2e-3 / 4 ** 0.1) and lr.high == pytest.approx(8e-3 * 4 ** 0.1)
    drop = nar["model.rgat.dropout"]  # all top trials agree: 5 % of the declared span each side
    assert drop.low == pytest.approx(0.085) and drop.high == pytest.approx(0.115)
    assert narrow_space(space, []) == space
    assert split_trials(5, TuneConfig(space=space, wide_trials=3, narrow_trials=2)) == (3, 2)
    assert split_trials(1, TuneConfig(space=space, wide_trials=3, narrow_trials=2)) == (1, 0)
    assert encode([1, 2]) == "[1, 2]" and encode("concat") == "concat"


@pytest.mark.parametrize(("space", "message"), [
    ({"train.nope": {"choices": [1]}}, "'train.nope' is not a pipeline key"),
    ({"model.moe.experts": {"choices": [0, 4]}}, "value 0 is not valid"),
    ({"train.epochs": {"low": 5, "high": 20}}, "add integer: true"),
    ({"data.impute_k": {"choices": [3, 5]}}, "cannot be searched"),
    ({"train.learning_rate": {"low": 0, "high": 1e-3, "log": True}}, "log range needs low > 0"),
    ({"train.learning_rate": {"low": 1e-3}}, "needs both low and high"),
])
def test_bad_space_is_a_one_line_config_error(tmp_path: Path, space: dict, message: str) -> None:
    d = load_pipeline("demo").model_dump(mode="json")
    d["tune"]["space"] = space
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(d))
    res = CliRunner().invoke(cli, ["check-config", "--pipeline", str(path)])
    assert res.exit_code == 2 and message in res.output and len(res.output.strip().splitlines()) == 1


def test_shipped_tune_sections() -> None:
    af = load_pipeline("africa-coarse").tune
    assert af is not None and af.space["model.rgat.hidden_dims"].choices == [[256, 128], [256, 384, 192],
                                                                          [512, 256, 128, 64]]
    assert af.space["model.moe.experts"].choices == [4, 8, 16]
    assert load_pipeline("demo").tune is not None and load_pipeline("africa").tune is not None


def test_a_trial_never_reads_a_test_label(data: Path, tmp_path: Path) -> None:
    changed = tmp_path / "changed"
    shutil.copytree(data, changed)
    df = pd.read_parquet(changed / "samples.parquet")
    test = df.split == "test"
    df.loc[test, "soc_gkg"] = df.loc[test, "soc_gkg"] * 9.0 + 100.0
    df.to_parquet(changed / "samples.parquet", index=False)
    cfg = tiny_pipeline(epochs=3)
    seen: list[list[float]] = []
    for folder in (data, changed):
        rows: list[float] = []
        m = train_once(folder, cfg, epochs=3, seed=0, on_epoch=lambda e, r, rows=rows: rows.append(r["val_mape"]))
        seen.append([*rows, m["val_mape"], m["val_r2"]])
    assert len(seen[0]) == 5 and np.isfinite(seen[0]).all()
    assert seen[0] == seen[1]


def test_cli_refuses_bad_input(tmp_path: Path, data: Path) -> None:
    d = load_pipeline("demo").model_dump(mode="json")
    d.pop("tune")
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(d))
    r = CliRunner()
    for args, message in [
        (["--pipeline", str(path), "--data", str(data)], "no tune: section"),
        (["--region", "demo", "--data", str(tmp_path / "nowhere")], "samples.parquet not found"),
        (["--region", "demo", "--data", str(data), "--trials", "0"], "--trials"),
    ]:
        res = r.invoke(cli, ["tune", *args, "--out", str(tmp_path / "out")])
        assert res.exit_code == 2 and message in res.output, res.output
    assert r.invoke(cli, ["tune", "--help"]).exit_code == 0


@pytest.fixture(scope="module")
def cluster_address() -> object:
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=40) as cluster:
        yield cluster.scheduler_address


def test_two_step_search_on_two_workers_resumes(data: Path, tmp_path: Path, cluster_address: str) -> None:
    import optuna

    out = tmp_path / "search"
    cfg = small_search()
    first = tune.run(cfg, data, out, trials=3, scheduler=cluster_address, final=False, progress=False)
    assert first.counts == {"wide": 2, "narrow": 1} and first.final is None
    # the pipeline's own values are the first wide trial (every searched key's hand-set value is in SPACE)
    hand = cfg.model_dump(mode="json")
    first_trial = optuna.load_study(study_name="wide", storage=open_storage(out / TUNE_STUDY)).trials[0]
    assert first_trial.user_attrs.get("hand_set") is True
    assert first_trial.params["model.rgat.hidden_dims"] == json.dumps(hand["model"]["rgat"]["hidden_dims"])
    assert first_trial.params["model.moe.expert_type"] == get_dotted(hand, "model.moe.expert_type")
    for key in ("train.learning_rate", "model.rgat.dropout"):
        assert first_trial.params[key] == pytest.approx(get_dotted(hand, key))
    # a run killed mid-trial leaves a RUNNING trial behind: the next run marks it interrupted, it does not count
    study = optuna.load_study(study_name="wide", storage=open_storage(out / TUNE_STUDY))
    study.ask()
    res = tune.run(cfg, data, out, trials=5, scheduler=cluster_address, progress=False)
    assert res.counts == {"wide": 3, "narrow": 2}
    df = pd.read_csv(out / TUNE_TRIALS)
    assert len(df) == 6 and df["interrupted"].sum() == 1
    done = df[~df["interrupted"]]
    assert set(done["state"]) <= {"COMPLETE", "PRUNED", "FAIL"} and (done["state"] == "COMPLETE").sum() >= 2
    assert {f"param:{k}" for k in SPACE} <= set(df.columns) and done["seconds"].gt(0).all()
    ok = done[done["state"] == "COMPLETE"]
    best = ok.sort_values(["val_mape", "val_r2"], ascending=[True, False]).iloc[0]
    assert res.best["val_mape"] == pytest.approx(best["val_mape"])
    # the narrowed step stays inside the wide space and keeps only categories of step 1's top quartile
    narrow = df[df["step"] == "narrow"]
    wide_best = df[(df["step"] == "wide") & (df["state"] == "COMPLETE")].sort_values("val_mape").iloc[0]
    assert (narrow["param:model.moe.expert_type"] == wide_best["param:model.moe.expert_type"]).all()
    # outputs
    for name in (TUNE_IMPORTANCE, TUNE_SLICES, TUNE_REPORT_MD, TUNE_REPORT_JSON):
        assert (out / name).stat().st_size > 0
    tuned = load_pipeline(out / TUNE_BEST_PIPELINE)
    for key, value in res.best["params"].items():
        node: object = tuned
        for part in key.split("."):
            node = getattr(node, part)
        assert node == value
    check = CliRunner().invoke(cli, ["check-config", "--pipeline", str(out / TUNE_BEST_PIPELINE)])
    assert check.exit_code == 0, check.output
    fin = res.final
    assert fin is not None and fin["winner_val"] in ("best", "hand-set")
    for name in ("best", "hand-set"):
        assert fin[name]["test"]["n"] == 20 and np.isfinite(fin[name]["test"]["rmse"])
        assert (out / "final" / name / "bundle.json").is_file()
    # the same command again has nothing left to run
    again = tune.run(cfg, data, out, trials=5, scheduler=cluster_address, final=False, progress=False)
    assert again.counts == res.counts and len(pd.read_csv(out / TUNE_TRIALS)) == 6


def test_another_space_in_the_same_out_is_refused(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "search"
    tune.run(small_search(), data, out, trials=1, scheduler="threads", epochs=2, final=False, progress=False)
    other = small_search(space={"train.learning_rate": {"low": 1e-3, "high": 2e-2, "log": True}})
    with pytest.raises(ConfigError, match="another space"):
        tune.run(other, data, out, trials=2, scheduler="threads", epochs=2, final=False, progress=False)


def test_pruning_from_the_epoch_hook_stops_training(data: Path) -> None:
    import optuna

    epochs: list[int] = []

    def prune_at_1(epoch: int, row: dict[str, float]) -> None:
        epochs.append(epoch)
        if epoch == 1:
            raise optuna.TrialPruned("pruned at epoch 1")

    with pytest.raises(optuna.TrialPruned):
        train_once(data, tiny_pipeline(epochs=6), epochs=6, seed=0, on_epoch=prune_at_1)
    assert epochs == [0, 1]
