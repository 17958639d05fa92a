"""LightFM hybrid recommender: features, training, evaluation, serving.

A plain library: no Flask, no geo_index.
"""

from .artifact import ArtifactError, load, save, versions
from .blend import Blend
from .data import DataError, read_table
from .features import FeatureConfig, FeatureSpace
from .serving import Scorer
from .training import TrainConfig, TrainedModel, interaction_weights, train

__all__ = [
    "ArtifactError",
    "Blend",
    "DataError",
    "FeatureConfig",
    "FeatureSpace",
    "Scorer",
    "TrainConfig",
    "TrainedModel",
    "interaction_weights",
    "load",
    "read_table",
    "save",
    "train",
    "versions",
]
