"""socmap: wall-to-wall maps of topsoil soil organic carbon (SOC) with calibrated uncertainty.

The model is SpTGNN (Mos et al. 2026): a heterogeneous graph of soil samples, a frozen TerraMind image
encoder, a sparse mixture-of-experts fusion and a relational graph attention stack, with deep ensembles and
temperature scaling for aleatoric and epistemic uncertainty.
"""

from __future__ import annotations

from socmap.errors import ConfigError, DataError, EOError, ModelError, SocmapError

__version__ = "0.1.0"
__all__ = ["ConfigError", "DataError", "EOError", "ModelError", "SocmapError", "__version__"]
