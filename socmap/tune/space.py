"""The search space: Optuna distributions from the pipeline's ``tune.space``, trial parameters applied to a
pipeline, and the narrowing of step 2 around the top quartile of step 1.

Optuna's categorical choices must be None, bool, int, float or str, so a list value (RGAT widths ``[256, 128]``)
is carried as its JSON text (``"[256, 128]"``) and decoded when it is applied; every other value is itself.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from socmap.config import PipelineConfig, TuneParam, get_dotted, set_dotted
from socmap.errors import ConfigError

__all__ = ["apply_params", "decode", "distributions", "dump_space", "encode", "hand_set_params", "load_space",
           "narrow_space", "space_fingerprint"]

_PLAIN = (type(None), bool, int, float, str)


def encode(value: Any) -> Any:
    """A categorical value as Optuna stores it (lists and dicts as JSON text)."""
    return value if isinstance(value, _PLAIN) else json.dumps(value)


def decode(param: TuneParam, stored: Any) -> Any:
    """The pipeline value of a stored parameter (the inverse of :func:`encode` for this parameter's choices)."""
    if param.choices is not None:
        for choice in param.choices:
            if encode(choice) == stored:
                return choice
        raise ConfigError(f"stored value {stored!r} is none of the choices {param.choices}")
    return round(stored) if param.integer else float(stored)


def distributions(space: Mapping[str, TuneParam]) -> dict[str, Any]:
    """``{key: optuna distribution}`` for ``study.ask``."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for key, p in space.items():
        if p.choices is not None:
            out[key] = CategoricalDistribution([encode(c) for c in p.choices])
        elif p.integer:
            assert p.low is not None and p.high is not None
            out[key] = IntDistribution(int(p.low), int(p.high), log=p.log)
        else:
            assert p.low is not None and p.high is not None
            out[key] = FloatDistribution(float(p.low), float(p.high), log=p.log)
    return out


def hand_set_params(cfg: PipelineConfig, space: Mapping[str, TuneParam]) -> dict[str, Any]:
    """The pipeline's own values of the searched keys, as Optuna stores them, for those inside the space (a
    value outside it is left for the sampler to choose)."""
    d = cfg.model_dump(mode="json")
    out: dict[str, Any] = {}
    for key, p in space.items():
        value = get_dotted(d, key)
        if p.choices is not None:
            if value in p.choices:
                out[key] = encode(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            assert p.low is not None and p.high is not None
            if p.low <= value <= p.high:
                out[key] = round(value) if p.integer else float(value)
    return out


def apply_params(cfg: PipelineConfig, space: Mapping[str, TuneParam], params: Mapping[str, Any]) -> PipelineConfig:
    """A validated copy of ``cfg`` with the trial's ``params`` (as Optuna stored them) set at their dotted keys."""
    d = cfg.model_dump(mode="json")
    for key, stored in params.items():
        if key not in space:
            raise ConfigError(f"parameter {key!r} is not in tune.space")
        set_dotted(d, key, decode(space[key], stored))
    out = PipelineConfig.model_validate(d)
    out.source_file = cfg.source_file
    return out


def narrow_space(space: Mapping[str, TuneParam], top: Sequence[Mapping[str, Any]]) -> dict[str, TuneParam]:
    """Step 2's space from the parameters of step 1's top trials (paper 5.2).

    Categoricals keep the values that occur among ``top`` (in the declared order); ranges shrink to the
    [min, max] those trials took (log scale where declared: the span is measured in log units), padded by 10 %
    of that span (5 % of the declared span where all top trials agree) and clipped to the declared range.
    Without any top trial the space is returned unchanged.
    """
    if not top:
        return dict(space)
    out: dict[str, TuneParam] = {}
    for key, p in space.items():
        seen = [t[key] for t in top if key in t]
        if not seen:
            out[key] = p
            continue
        if p.choices is not None:
            keep = [c for c in p.choices if encode(c) in seen]
            out[key] = TuneParam(choices=keep or list(p.choices))
            continue
        assert p.low is not None and p.high is not None
        f = math.log if p.log else (lambda x: x)
        g = math.exp if p.log else (lambda x: x)
        lo_d, hi_d = f(p.low), f(p.high)
        lo, hi = f(min(seen)), f(max(seen))
        pad = 0.1 * (hi - lo) if hi > lo else 0.05 * (hi_d - lo_d)
        lo, hi = max(lo_d, lo - pad), min(hi_d, hi + pad)
        low, high = g(lo), g(hi)
        if p.integer:
            low, high = math.floor(low + 1e-9), math.ceil(high - 1e-9)
        low, high = max(p.low, low), min(p.high, high)  # exp(log(x)) may step outside by a rounding error
        out[key] = TuneParam(low=low, high=max(low, high), log=p.log, integer=p.integer)
    return out


def dump_space(space: Mapping[str, TuneParam]) -> dict[str, dict[str, Any]]:
    """The space as plain values (JSON, pickle to a worker); :func:`load_space` is the inverse."""
    return {k: v.model_dump(mode="json") for k, v in space.items()}


def load_space(dumped: Mapping[str, Any]) -> dict[str, TuneParam]:
    """A space from :func:`dump_space`'s plain values."""
    return {k: TuneParam.model_validate(v) for k, v in dumped.items()}


def space_fingerprint(space: Mapping[str, TuneParam]) -> str:
    """A stable text of the space (stored with the search, so a re-run with another space is refused)."""
    return json.dumps(dump_space(space), sort_keys=True)
