"""The model of paper Fig. 1, one module per component."""

from stae.model.autoencoder import SpatioTemporalAutoencoder, StaeOutput, build_model, parameter_table
from stae.model.flow import FlowRegressor, flow_gradient, huber, huber_smoothness
from stae.model.memory import ConvLSTMCell, ConvLSTMMemory, FCLSTMCell, FCLSTMMemory
from stae.model.spatial import SpatialDecoder, SpatialEncoder
from stae.model.warp import backward_to_forward, upsample_flow, warp

__all__ = [
    "ConvLSTMCell", "ConvLSTMMemory", "FCLSTMCell", "FCLSTMMemory", "FlowRegressor",
    "SpatialDecoder", "SpatialEncoder", "SpatioTemporalAutoencoder", "StaeOutput",
    "backward_to_forward", "build_model", "flow_gradient", "huber", "huber_smoothness",
    "parameter_table", "upsample_flow", "warp",
]
