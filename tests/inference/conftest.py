"""The training tests' small seeded data folder and the 2-member bundle trained on it, reused."""

from tests.train.conftest import syn_bundle, syn_data  # noqa: F401  (fixtures)
