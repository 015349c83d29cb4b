"""Does a trained model's flow describe motion, or does it draw the prediction?

On the first test sequences of Moving MNIST (frames ``0..context-1`` in, frame ``context``
scored) :func:`diagnose` measures the model's prediction error, the median flow length on digit
pixels beside the true motion's, the end-point error, the fraction of sampling points that fall
off the feature map, and the prediction error when the same model's sampler reads the border
instead of zeros off the map (``ModelConfig.warp_padding``) or when the flow is set to zero.

A model that relies on sampling zeros off the map to draw digits (docs/model.md#warp-padding)
loses most of its quality under border padding; a model whose flow is motion does not. The
``stae diagnose`` command prints these numbers (docs/flow.md#stae-diagnose-is-the-flow-motion).
"""

from __future__ import annotations

from typing import Any

import torch

from stae.errors import StaeError

TEST_SEQUENCES = 2000  # the default test split's size (seed 2, MNIST test digits; docs/data.md)
FRAMES = 20  # frames per test sequence
SIZE = 64  # frame height and width


def diagnose(model, sequences: int = 64, context: int = 10, binary: bool = True,
             batch_size: int = 64) -> dict[str, Any]:
    """The numbers of the module docstring for ``model`` (put in eval mode) on the first
    ``sequences`` test sequences, binary (scored by per-pixel BCE, Table 2's metric, keys
    ``bce*``) or float (per-pixel squared error, Table 3's, keys ``l2*``). Flows are in image
    pixels; the true flow is the generator's backward flow living on frame ``context``, the
    model's is its last flow ``T_{context-1}`` upsampled to image resolution (same convention).
    ``batch_size`` bounds memory only: the numbers do not depend on it."""
    _check(model, sequences, context, batch_size)
    from stae.data.moving_mnist import default_dataset
    from stae.metrics import bce, epe, l2

    model = model.eval()
    ds = default_dataset("test", binary=binary, with_truth=True)
    parts = [_run_batch(model, [ds[i] for i in range(start, min(start + batch_size, sequences))], context)
             for start in range(0, sequences, batch_size)]
    got = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    target, digit = got["target"], got["digit"]
    if binary:
        name, score = "bce", lambda pred: bce(pred.clamp(1e-7, 1 - 1e-7), target)
    else:
        name, score = "l2", lambda pred: l2(pred, target)
    padding = model.config.warp_padding
    return {
        "sequences": sequences, "warp_padding": padding,
        name: score(got["own"]),
        f"{name}_sampler_reads_border": score(got["border"]),
        f"{name}_sampler_reads_zeros": score(got["zeros"]),
        f"{name}_zero_flow": score(got["zero_flow"]),
        "flow_median_px_on_digits": float(got["flow"].norm(dim=1)[digit].median()),
        "true_motion_median_px_on_digits": float(got["truth"].norm(dim=1)[digit].median()),
        "epe_px_on_digits": epe(got["flow"], got["truth"], digit),
        "samples_off_the_map": float(1 - got["inside"].float().mean()),
    }


def _check(model, sequences: int, context: int, batch_size: int) -> None:
    if not 1 <= sequences <= TEST_SEQUENCES:
        raise StaeError(f"sequences must be in 1..{TEST_SEQUENCES} (the test split's size), got {sequences}")
    if not 1 <= context <= FRAMES - 1:
        raise StaeError(f"context must be in 1..{FRAMES - 1} (frame `context` of {FRAMES} is scored), got {context}")
    if batch_size < 1:
        raise StaeError(f"batch_size must be >= 1, got {batch_size}")
    model.check_frame_shape((1, SIZE, SIZE), what="a Moving MNIST frame")
    if model.config.head != "features":
        raise StaeError(f"this model has head={model.config.head!r}: the sampler diagnosis decodes warped "
                        "features of the paper's head (head='features')")


def _run_batch(model, items: list[dict[str, torch.Tensor]], context: int) -> dict[str, torch.Tensor]:
    """One batch of sequences: the predictions of frame ``context`` under the four samplings,
    the target, the model's and the true flow on the image grid, the digit pixels, and which
    of the model's sampling points fall on the feature map."""
    from stae.model.warp import upsample_flow, warp

    clip = torch.stack([it["clip"] for it in items])
    truth = torch.stack([it["flow"][context - 1] for it in items])  # backward flow living on frame `context`
    digit = torch.stack([it["masks"][context].any(0) for it in items])
    with torch.no_grad():
        # x_tau-1 and T_tau-1 of the model's own last step (its memory path: block matching, skip)
        x, flow = model.encoder(clip[:, context - 1]), model(clip[:, :context], first_output=context - 1).flows[:, -1]
        h, w = flow.shape[-2:]
        gy, gx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        px, py = gx + flow[:, 0], gy + flow[:, 1]
        padding = model.config.warp_padding
        return {
            "own": _image(model, warp(x, flow, padding)),
            "border": _image(model, warp(x, flow, "border")),
            "zeros": _image(model, warp(x, flow, "zeros")),
            "zero_flow": _image(model, warp(x, torch.zeros_like(flow), padding)),
            "target": clip[:, context], "truth": truth, "digit": digit,
            "flow": upsample_flow(flow, model.stride),
            "inside": (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1),
        }


def _image(model, warped: torch.Tensor) -> torch.Tensor:
    """D and the output nonlinearity on warped features: the model's prediction from them."""
    return model.to_image(model.decoder(warped))
