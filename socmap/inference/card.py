"""The model card: how a bundle was trained and how well it did on the validation split.

Two files in the bundle say the same: ``model_card.json`` (:class:`ModelCard`) and ``MODEL_CARD.md``
(:func:`card_markdown`); ``socmap train`` writes both and ``socmap calibrate`` rewrites both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from socmap.inference.calibration import Calibration

__all__ = ["ModelCard", "card_markdown"]


@dataclass
class ModelCard:
    """``model_card.json``. Figures in g/kg unless named otherwise; times in seconds."""

    pipeline: str
    """The pipeline's name."""
    created: str
    """UTC time of training, ISO 8601."""
    training_seconds: float
    device: str
    mode: str
    """``full`` or ``minibatch`` graph training."""
    data: dict[str, Any]
    """``dir`` (the data folder), ``nodes``, ``split`` (train / val / test counts), ``edges``."""
    target: dict[str, Any]
    """The target transform and the scaler's ``mean`` and ``sd`` (log(1+SOC) units)."""
    inputs: dict[str, Any]
    """``streams``, ``feature_columns``, ``relations``, ``node_covariates``, ``label_input``."""
    members: int
    seeds: list[int]
    epochs: list[int]
    """Epochs each member ran."""
    best_epochs: list[int]
    member_val: list[dict[str, float]]
    """Each member's validation scores at its best epoch."""
    member_seconds: list[float]
    loss: str
    calibration: Calibration
    validation: dict[str, float]
    """The calibrated ensemble's validation figures (:func:`socmap.inference.calibration.validation_metrics`)."""
    baseline_val_rmse: float
    """RMSE of predicting every validation site with the training sites' mean SOC."""
    software: dict[str, str] = field(default_factory=dict)
    """Package -> version."""
    train_config: dict[str, Any] = field(default_factory=dict)
    """The pipeline's ``train`` block (its ``epochs`` bound and ``max_minutes`` safety net among them)."""
    stopped_by: list[str] = field(default_factory=list)
    """Why each member stopped: ``early stopping``, ``epoch bound`` or ``time budget`` (empty on older cards)."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON document, keys in the order train writes them."""
        return {
            "pipeline": self.pipeline, "created": self.created, "training_seconds": self.training_seconds,
            "device": self.device, "mode": self.mode, "data": self.data, "target": self.target,
            "inputs": self.inputs, "members": self.members, "seeds": list(self.seeds), "epochs": list(self.epochs),
            "best_epochs": list(self.best_epochs), "member_val": self.member_val,
            "member_seconds": list(self.member_seconds), "loss": self.loss, **self.calibration.to_info(),
            "validation": self.validation, "baseline_val_rmse": self.baseline_val_rmse, "software": self.software,
            "train_config": self.train_config,
            **({"stopped_by": list(self.stopped_by)} if self.stopped_by else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelCard:
        """Read :meth:`to_dict`'s document (KeyError / TypeError / ValueError on a damaged one)."""
        return cls(
            pipeline=str(d["pipeline"]), created=str(d["created"]), training_seconds=float(d["training_seconds"]),
            device=str(d["device"]), mode=str(d["mode"]), data=dict(d["data"]), target=dict(d["target"]),
            inputs=dict(d["inputs"]), members=int(d["members"]), seeds=list(d["seeds"]), epochs=list(d["epochs"]),
            best_epochs=list(d["best_epochs"]), member_val=list(d.get("member_val", [])),
            member_seconds=list(d.get("member_seconds", [])), loss=str(d["loss"]),
            calibration=Calibration.from_info(d), validation=dict(d["validation"]),
            baseline_val_rmse=float(d["baseline_val_rmse"]), software=dict(d.get("software", {})),
            train_config=dict(d.get("train_config", {})), stopped_by=list(d.get("stopped_by", [])),
        )


def _tails(dof: float | None) -> str:
    return "Gaussian" if dof is None else f"Student t, {dof:.2f} degrees of freedom (fitted on validation)"


def _budget_line(card: ModelCard) -> list[str]:
    minutes = card.train_config.get("max_minutes")
    return [f"- Warning: {card.stopped_by.count('time budget')} member(s) stopped at the time budget "
            f"(train.max_minutes {minutes}) before early stopping or the epoch bound: on an idle machine the "
            "same command trains them longer and gives another model"]


def card_markdown(card: ModelCard) -> str:
    """MODEL_CARD.md: the card's JSON as a page to read."""
    v, data, inputs = card.validation, card.data, card.inputs
    split = data["split"]
    lines = [
        f"# Model card: {card.pipeline} SpTGNN ensemble", "",
        f"- Trained: {card.created} in {card.training_seconds:.0f} s on {card.device} ({card.mode} graph training)",
        f"- Data: {data['dir']} ({data['nodes']} sites; train / val / test "
        f"{split['train']} / {split['val']} / {split['test']})",
        f"- Target: log(1 + SOC g/kg), standardised (training mean {card.target['mean']:.4f}, "
        f"sd {card.target['sd']:.4f})",
        f"- Inputs: streams {inputs['streams']}, {len(inputs['feature_columns'])} tabular features, "
        f"relations {inputs['relations']}, label input {inputs['label_input']}",
        f"- Ensemble: {card.members} members, seeds {card.seeds}, epochs run {card.epochs}, "
        f"best epochs {card.best_epochs}" + (f", stopped by {card.stopped_by}" if card.stopped_by else ""),
        *(_budget_line(card) if "time budget" in card.stopped_by else []),
        f"- Loss: {card.loss}; temperature T = {card.calibration.temperature:.4f} (fitted on validation, eq. 7); "
        f"predictive tails: {_tails(card.calibration.tail_dof)}; {card.calibration.growth_text()}", "",
        "## Validation (g/kg)", "",
        "| metric | ensemble | train-mean baseline |", "|---|---|---|",
        f"| RMSE | {v['rmse']:.3f} | {card.baseline_val_rmse:.3f} |",
        f"| MAE | {v['mae']:.3f} | |", f"| R2 | {v['r2']:.4f} | |", f"| MAPE (%) | {v['mape']:.2f} | |",
        f"| NLL (log(1+SOC), calibrated) | {v['nll']:.4f} | |", f"| PICP 95 % | {v['picp95']:.3f} | |", "",
        "## Software", "", *[f"- {k} {val}" for k, val in card.software.items()], "",
    ]
    return "\n".join(lines)
