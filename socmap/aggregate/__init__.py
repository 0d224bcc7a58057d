"""Area totals with honest uncertainty: per-zone SOC (and stock) from a map, with intervals that account for the
spatial correlation of the errors (``socmap aggregate``: :func:`socmap.aggregate.stage.run`)."""

from socmap.aggregate.correlogram import Correlogram, fit_correlogram, heldout_residuals
from socmap.aggregate.interval import ZoneSum, zone_sum
from socmap.aggregate.stage import AggregateResult, MapLayers, aggregate_zones, load_map
from socmap.aggregate.zones import read_zones

__all__ = ["AggregateResult", "Correlogram", "MapLayers", "ZoneSum", "aggregate_zones",
           "fit_correlogram", "heldout_residuals", "load_map", "read_zones", "zone_sum"]
