"""The image-space head (``ModelConfig.head = "image"``, issue 13): how D's output and the warped
input frame make the prediction.

The paper's head (``head = "features"``) warps the encoder's features x_t by the flow T_t and
decodes them: ``Y~_{t+1} = D(warp(x_t, T_t))``. On real footage that prediction is a blurred
copy (D must redraw every texture from 32 pooled maps). The image head keeps GG+S but also warps
the *input frame* at full resolution with the flow upsampled from the feature grid
(:func:`stae.model.warp.upsample_flow`, the one :func:`stae.model.warp.warp`), so textures move
sharply, and D -- still reading the warped features -- supplies what warping cannot::

    W   = warp(Y_t, upsample(T_t))                         (B, C, H, W)
    a   = sigmoid(D_mask)          if image_mask, else 1   (B, 1, H, W)  where to move
    r   = D_residual               if image_residual, else 0             new content, light
    Y~_{t+1} = a * W + (1 - a) * Y_t + r

``a`` lets the model learn *when not to move*: where ``a`` is 0 the last frame is kept
(static regions, where the flow is noise; pixels whose source is occluded).
"""

from __future__ import annotations

import torch
from torch import nn

from stae.model.warp import upsample_flow, warp

# The image head's last D convolution starts at this multiple of its xavier initialisation: 0,
# so a new model starts as "copy the last frame" (residual 0, blend 1/2 of two equal frames
# under Theta's zero initial flow) -- the baseline to beat on real video -- instead of adding a
# random residual (a scale of 0.1 started at 11x copying's MSE on the textures). The last
# convolution still receives a gradient from the first update (its input is not zero).
IMAGE_INIT_SCALE = 0.0


def image_prediction(frame: torch.Tensor, flow: torch.Tensor, decoded: torch.Tensor | None, stride: int,
                     residual: bool, mask: bool, padding: str = "zeros") -> torch.Tensor:
    """The image head's prediction (module docstring).

    frame: Y_t (N, C, H, W); flow: T_t (N, 2, H / stride, W / stride) in feature-grid pixels;
    decoded: D's output (N, C * residual + mask, H, W) -- mask logit first, then the residual --
    or None when neither is on.
    """
    c = frame.shape[1]
    warped = warp(frame, upsample_flow(flow, stride), padding)  # (N, C, H, W)
    if decoded is None:
        return warped
    i = 0
    pred = warped
    if mask:
        a = torch.sigmoid(decoded[:, :1])  # (N, 1, H, W)
        pred = a * warped + (1.0 - a) * frame
        i = 1
    if residual:
        pred = pred + decoded[:, i:i + c]
    return pred


def init_image_decoder(decoder: nn.Module) -> None:
    """Scale D's last convolution (IMAGE_INIT_SCALE) after the xavier initialisation."""
    last = [m for m in decoder.modules() if isinstance(m, nn.Conv2d)][-1]
    with torch.no_grad():
        last.weight.mul_(IMAGE_INIT_SCALE)
