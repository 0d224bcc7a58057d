"""The mapping tests' small world and bundle, reused: aggregation reads what `socmap predict` wrote from them."""

from tests.mapping.conftest import map_bundle, map_world  # noqa: F401  (fixtures)
