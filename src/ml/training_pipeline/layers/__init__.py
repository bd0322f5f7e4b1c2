"""Custom Keras layers, one concern per module, all serializable under package "ml".

Importing this package imports Keras (and so TensorFlow); the factory imports it only
when a model is built.
"""

from ml.training_pipeline.layers.activations import gelu_tanh
from ml.training_pipeline.layers.baseline_offset import BaselineOffset
from ml.training_pipeline.layers.bayesian import BayesianDense, BayesianSelfAttention
from ml.training_pipeline.layers.dense_block import dense_block
from ml.training_pipeline.layers.feature_noise import FeatureNoise
from ml.training_pipeline.layers.fused_lstm import FusedLSTM
from ml.training_pipeline.layers.gated_mix import GatedMix
from ml.training_pipeline.layers.last_timestep import LastTimestep
from ml.training_pipeline.layers.mamba import MambaBlock
from ml.training_pipeline.layers.ordered_quantiles import OrderedQuantiles
from ml.training_pipeline.layers.positions import SinusoidalPositions
from ml.training_pipeline.layers.positive_output import Log2SoftplusPositive
from ml.training_pipeline.layers.recurrent_block import stacked_lstm
from ml.training_pipeline.layers.row_set_attention import RowSetAttention
from ml.training_pipeline.layers.tcn_block import residual_tcn_block
from ml.training_pipeline.layers.temporal_attention import TemporalAttention
from ml.training_pipeline.layers.tft import (
    GateAddNorm,
    GatedResidualNetwork,
    InterpretableMultiHeadAttention,
    TimeSlice,
    VariableSelection,
)
from ml.training_pipeline.layers.xlstm import MLSTMBlock, SLSTMBlock

__all__ = ["BaselineOffset", "BayesianDense", "BayesianSelfAttention", "FeatureNoise", "FusedLSTM", "GateAddNorm", "GatedMix", "GatedResidualNetwork",
           "InterpretableMultiHeadAttention", "LastTimestep", "Log2SoftplusPositive", "MLSTMBlock", "MambaBlock", "OrderedQuantiles", "RowSetAttention", "SLSTMBlock", "SinusoidalPositions", "TemporalAttention", "TimeSlice", "VariableSelection", "dense_block", "gelu_tanh", "residual_tcn_block", "stacked_lstm"]
