"""socmap.io.json_safe: what every stage report passes through before json.dumps."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from socmap.io import json_safe


def test_json_safe_writes_strict_json() -> None:
    tree = {"r2": float("nan"), "hi": math.inf, 3: np.float32(0.5), "n": np.int64(7), "ci": (np.float64(-np.inf), 1),
            "path": Path("/a/b"), "nested": [{"x": np.nan}], "ok": None, "s": "text"}
    out = json_safe(tree)
    assert out == {"r2": None, "hi": None, "3": 0.5, "n": 7, "ci": [None, 1], "path": "/a/b", "nested": [{"x": None}],
                   "ok": None, "s": "text"}
    assert type(out["n"]) is int and type(out["3"]) is float
    text = json.dumps(out, allow_nan=False)  # raises on NaN / inf
    assert json.loads(text) == out
