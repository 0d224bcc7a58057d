"""socmap.tune: the two-step hyper-parameter search of a pipeline (``socmap tune``: :func:`socmap.tune.stage.run`;
paper 5.2, Table 6).

Optuna (TPE sampler, median / successive-halving pruning, a JournalStorage file shared by the Dask workers that run
the trials); the search space is the pipeline's ``tune:`` section.
"""

from socmap.tune.stage import TuneResult

__all__ = ["TuneResult"]
