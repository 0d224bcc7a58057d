"""Pipeline and grid configs: every shipped file loads, and each kind of bad config names its key and file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from socmap.cli import cli
from socmap.config import list_regions, load_grid, load_pipeline, socmap_home
from socmap.errors import ConfigError

GOOD = {
    "name": "t",
    "grid": "demo",
    "stac": {"catalog": "stac/catalog.json"},
    "train": {"epochs": 3},
}


def _write(tmp_path: Path, data: object, name: str = "p.yaml") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return p


@pytest.mark.parametrize("region", ["demo", "africa", "europe", "global"])
def test_shipped_pipelines_load(region: str) -> None:
    assert region in list_regions()
    cfg = load_pipeline(region)
    assert cfg.name == region
    grid = cfg.load_grid()
    assert grid.shape[0] > 0 and grid.shape[1] > 0


def test_table6_values() -> None:
    """Spot-check the paper's Table 6 in the shipped pipelines."""
    af, eu, gl = (load_pipeline(r) for r in ("africa", "europe", "global"))
    assert af.train.learning_rate == pytest.approx(1.95e-4)
    assert af.model.rgat.hidden_dims == [512, 256, 128, 64]
    assert af.model.rgat.attention_mode == "multiplicative-self-attention"
    assert af.model.moe.top_k is None and af.model.moe.experts == 8
    assert eu.model.rgat.hidden_dims == [256, 384, 192] and eu.model.moe.experts == 16 and eu.model.moe.top_k == 4
    assert gl.model.rgat.attention_mechanism == "across-relation" and gl.model.encoder.merge == "max"
    assert gl.model.moe.expert_type == "concat" and gl.train.grad_clip == pytest.approx(1.87)
    for cfg in (af, eu, gl):
        assert cfg.model.graph.k_spatial == 5 and cfg.model.graph.k_ndvi == 3
        assert cfg.model.positional.scales == 10 and cfg.model.temporal.frequencies == 4


def test_paths_resolve_and_env_expands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCMAP_HOME", str(tmp_path / "home"))
    p = _write(tmp_path, {**GOOD, "data": {"sources": [{"path": "${SOCMAP_HOME}/s.csv", "mapping": "demo"}]}})
    cfg = load_pipeline(p)
    assert cfg.data.sources[0].path == str(tmp_path / "home" / "s.csv")
    assert cfg.resolve("stac/catalog.json") == str(tmp_path / "stac" / "catalog.json")
    assert cfg.resolve("https://example.org/x.tif") == "https://example.org/x.tif"
    assert socmap_home() == tmp_path / "home"


BAD_CASES = [
    pytest.param({**GOOD, "colour": "red"}, "colour: unknown key", id="unknown-top-key"),
    pytest.param({**GOOD, "model": {"rgat": {"heds": 4}}}, "model.rgat.heds: unknown key", id="unknown-nested-key"),
    pytest.param({**GOOD, "train": {"epochs": "many"}}, "train.epochs:", id="wrong-type"),
    pytest.param({**GOOD, "train": {"learning_rate": -1}}, "train.learning_rate:", id="negative"),
    pytest.param({k: v for k, v in GOOD.items() if k != "grid"}, "grid: required value missing", id="missing-grid"),
    pytest.param({k: v for k, v in GOOD.items() if k != "name"}, "name: required value missing", id="missing-name"),
    pytest.param({**GOOD, "model": {"rgat": {"attention_mode": "sum"}}}, "model.rgat.attention_mode:",
                 id="bad-choice"),
    pytest.param({**GOOD, "stac": {"api": "http://x", "catalog": "c.json"}}, "stac: set exactly one",
                 id="stac-both"),
    pytest.param({**GOOD, "data": {"split": {"fractions": [0.5, 0.2, 0.2]}}}, "data.split: fractions must sum",
                 id="fractions"),
    pytest.param({**GOOD, "data": {"sources": [{"path": "a.csv"}]}}, "data.sources.0.mapping: required",
                 id="missing-nested"),
    pytest.param({**GOOD, "data": {"top_cm": 30, "bottom_cm": 30}}, "data: bottom_cm (30.0) must be deeper",
                 id="depth-interval"),
    pytest.param({**GOOD, "data": {"soc_min_gkg": 5, "soc_max_gkg": 4}}, "data: soc_max_gkg (4.0) must exceed",
                 id="soc-range"),
    pytest.param({**GOOD, "data": {"year_range": [2020, 1990]}}, "data: year_range must be [first, last]",
                 id="year-range"),
    pytest.param({**GOOD, "grid": "atlantis"}, "grid: no grid named 'atlantis'", id="unknown-grid"),
    pytest.param("name: [unclosed", "not valid YAML", id="bad-yaml"),
    pytest.param("- a\n- b\n", "expected a mapping", id="not-a-mapping"),
]


@pytest.mark.parametrize(("data", "message"), BAD_CASES)
def test_bad_pipeline(tmp_path: Path, data: object, message: str) -> None:
    p = _write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_pipeline(p)
    assert str(p) in str(err.value)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"name": "g", "crs": "EPSG:999999", "resolution": 10, "bounds": [0, 0, 1, 1]}, "unknown crs"),
        ({"name": "g", "crs": "EPSG:4326", "resolution": 1, "bounds": [1, 0, 0, 1]}, "max > min"),
        ({"name": "g", "crs": "EPSG:4326", "resolution": 0, "bounds": [0, 0, 1, 1]}, "resolution:"),
        ({"name": "g", "crs": "EPSG:4326", "resolution": 1, "bounds": [0, 0, 1]}, "bounds"),
        ({"crs": "EPSG:4326", "resolution": 1, "bounds": [0, 0, 1, 1]}, "name: required value missing"),
    ],
)
def test_bad_grid(tmp_path: Path, grid: dict, message: str) -> None:
    p = _write(tmp_path, grid, "g.yaml")
    with pytest.raises(ConfigError, match=r"g\.yaml") as err:
        load_grid(p)
    assert message in str(err.value)


def test_cli_bad_config_is_one_line_exit_2(tmp_path: Path) -> None:
    p = _write(tmp_path, {**GOOD, "model": {"rgat": {"heds": 4}}})
    result = CliRunner().invoke(cli, ["check-config", "--pipeline", str(p)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "model.rgat.heds: unknown key" in result.stderr
    assert "Traceback" not in result.output


def test_cli_unknown_region() -> None:
    result = CliRunner().invoke(cli, ["check-config", "--region", "atlantis"])
    assert result.exit_code == 2 and "shipped: africa, africa-coarse, demo, europe, global" in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["tune", "--region", "demo", "--data", ".", "--out", "o", "--trials", "0"], "'--trials': 0 is not in the range"),
    (["train", "--region", "demo"], "Missing option '--data'"),
    (["predict", "--region", "demo", "--mode", "slow"], "'--mode'"),
    (["no-such-stage"], "No such command 'no-such-stage'"),
])
def test_click_usage_errors_are_one_line_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("socmap: error: ") and message in result.stderr
    assert "Usage:" not in result.output


@pytest.mark.parametrize("cmd", ["demo", "demo-world", "prepare", "extract", "embed", "train", "tune", "evaluate",
                                 "predict", "check-config"])
def test_every_stage_has_help(cmd: str) -> None:
    result = CliRunner().invoke(cli, [cmd, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_package_exports_every_public_class_and_function_of_its_modules() -> None:
    """``from socmap.config import X`` works for every public class and function that schema, presets, files,
    loading, dotted and secrets define, and ``socmap.config.__all__`` is the one list of them."""
    import inspect

    import socmap.config as pkg
    from socmap.config import dotted, files, loading, presets, schema, secrets

    modules = (schema, presets, files, loading, dotted, secrets)
    defined = {name for mod in modules for name, obj in vars(mod).items()
               if not name.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj))
               and obj.__module__ == mod.__name__}
    assert defined - set(pkg.__all__) == set()
    assert len(pkg.__all__) == len(set(pkg.__all__))
    for name in pkg.__all__:
        assert getattr(pkg, name) is getattr(next(m for m in modules if hasattr(m, name)), name)


def test_a_pipeline_naming_only_its_data_gets_the_cpu_preset(tmp_path: Path) -> None:
    """No model or train section: every key the cpu preset sets takes its value; ``preset: table6`` gives the
    schema's Table 6 defaults; a key the YAML sets wins and its section's other keys still come from the preset."""
    from socmap.config import PRESETS, ModelConfig, TrainConfig, get_dotted
    from socmap.config.presets import _CPU

    data = {"name": "t", "grid": "demo", "stac": None, "imagery": {"enabled": False},
            "data": {"sources": [{"path": "s.csv", "mapping": "demo"}]}}
    cpu = load_pipeline(_write(tmp_path, data, "cpu.yaml"))
    assert cpu.preset == "cpu" and PRESETS["cpu"] is _CPU
    resolved = cpu.model_dump(mode="json")
    for section, values in _CPU.items():
        for key, value in values.items():
            got = get_dotted(resolved, f"{section}.{key}")
            assert (got if not isinstance(value, dict) else {k: got[k] for k in value}) == value, key
    assert cpu.model.rgat.hidden_dims == [128, 64] and cpu.model.label_input and cpu.train.ensemble_members == 3
    assert cpu.model.streams == ModelConfig().streams and cpu.model.encoder == ModelConfig().encoder

    t6 = load_pipeline(_write(tmp_path, {**data, "preset": "table6"}, "t6.yaml"))
    assert t6.model == ModelConfig() and t6.train == TrainConfig()
    assert t6.model.moe.fusion_dim == 512 and t6.model.moe.experts == 8 and not t6.model.label_input
    assert t6.model.rgat.hidden_dims == [512, 256, 128, 64] and t6.train.learning_rate == pytest.approx(1.95e-4)

    over = load_pipeline(_write(tmp_path, {**data, "model": {"rgat": {"dropout": 0.2}, "streams": ["tabular"]},
                                           "train": {"epochs": 7}}, "over.yaml"))
    assert over.model.rgat.dropout == 0.2 and over.model.rgat.hidden_dims == [128, 64]
    assert over.model.streams == ["tabular"] and over.train.epochs == 7 and over.train.max_minutes == 30.0


def test_unknown_preset_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"preset: .*'cpu' or 'table6'"):
        load_pipeline(_write(tmp_path, {**GOOD, "preset": "gpu"}))


def test_check_config_names_the_layer_a_relation_needs(tmp_path: Path) -> None:
    """ndvi and elevation relations (the default) with no such covariate layer and no imagery: one warning line
    naming the layers to add (the data folder may still carry them, so it is no error); with both layers listed
    there is no warning, and the ok line names the preset."""
    pipe = {"name": "t", "grid": "demo", "stac": None, "imagery": {"enabled": False},
            "data": {"covariates": [{"name": "bio1", "path": "bio1.tif"}]}}
    result = CliRunner().invoke(cli, ["check-config", "--pipeline", str(_write(tmp_path, pipe))])
    assert result.exit_code == 0 and result.stderr.count("\n") == 1, result.output
    assert result.stderr.startswith("socmap: warning: ")
    for rel in ("ndvi", "elevation"):
        assert f"add a covariate layer named {rel!r} to data.covariates" in result.stderr
    pipe["data"]["covariates"] += [{"name": "ndvi", "path": "n.tif"}, {"name": "elevation", "path": "e.tif"}]
    result = CliRunner().invoke(cli, ["check-config", "--pipeline", str(_write(tmp_path, pipe))])
    assert result.exit_code == 0 and result.stderr == "" and "ok (preset cpu;" in result.output, result.output
