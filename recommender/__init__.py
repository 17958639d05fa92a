"""Two-stage recommender: LightFM hybrid, candidate sources and a LightGBM ranker; evaluation.

A plain library: no Flask, no geo_index. ``train`` fits the LightFM hybrid (the first
stage); ``served.fit_second_stage`` the sources and the ranker that the service ranks
with; ``compare`` (``scripts.evaluate``) measures both against strong baselines.
"""

from .artifact import ArtifactError, load, save, versions
from .blend import Blend
from .data import DataError, read_table
from .features import FeatureConfig, FeatureSpace
from .served import SecondStage, fit_second_stage
from .serving import Scorer
from .training import TrainConfig, TrainedModel, interaction_weights, train

__all__ = [
    "ArtifactError",
    "Blend",
    "DataError",
    "FeatureConfig",
    "FeatureSpace",
    "Scorer",
    "SecondStage",
    "TrainConfig",
    "TrainedModel",
    "fit_second_stage",
    "interaction_weights",
    "load",
    "read_table",
    "save",
    "train",
    "versions",
]
