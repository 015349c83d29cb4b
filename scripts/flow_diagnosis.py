"""Does a trained model's flow describe motion, or does it draw the prediction?

    python scripts/flow_diagnosis.py CHECKPOINT [--sequences 64] [--json OUT.json]

On the first test sequences of binary Moving MNIST (frames 0..9 in, frame 10 scored), it
prints the model's per-pixel BCE, the median flow length on digit pixels beside the true
motion's, the end-point error, the fraction of sampling points that fall off the feature
map, and the BCE when the same model's sampler reads the border instead of zeros off the map
(``ModelConfig.warp_padding``) or when the flow is set to zero. A model that relies on
sampling zeros off the map to draw digits (docs/model.md#warp-padding) loses most of its
quality under border padding; a model whose flow is motion does not.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch


def diagnose(model, sequences: int = 64, context: int = 10) -> dict:
    from stae.data.moving_mnist import default_dataset
    from stae.metrics import bce, epe
    from stae.model.warp import upsample_flow, warp

    model = model.eval()
    ds = default_dataset("test", binary=True, with_truth=True)
    items = [ds[i] for i in range(sequences)]
    clip = torch.stack([it["clip"] for it in items])
    target = clip[:, context]
    truth = torch.stack([it["flow"][context - 1] for it in items])  # backward flow living on frame `context`
    digit = torch.stack([it["masks"][context].any(0) for it in items])
    with torch.no_grad():
        feats = model.encoder(clip[:, :context].flatten(0, 1)).unflatten(0, (len(items), context))
        ms, _ = model.memory.run(feats)
        x, flow = feats[:, -1], model.flow(ms[:, -1])  # x_tau-1 and T_tau-1, as in the model's last step

        def score(f, padding):
            return bce(model._to_image(model._decode(warp(x, f, padding))).clamp(1e-7, 1 - 1e-7), target)

        h, w = flow.shape[-2:]
        gy, gx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        px, py = gx + flow[:, 0], gy + flow[:, 1]
        inside = ((px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)).float().mean()
        up = upsample_flow(flow, model.stride)
        padding = model.config.warp_padding
        return {
            "sequences": sequences, "warp_padding": padding,
            "bce": score(flow, padding),
            "bce_sampler_reads_border": score(flow, "border"),
            "bce_sampler_reads_zeros": score(flow, "zeros"),
            "bce_zero_flow": score(torch.zeros_like(flow), padding),
            "flow_median_px_on_digits": float(up.norm(dim=1)[digit].median()),
            "true_motion_median_px_on_digits": float(truth.norm(dim=1)[digit].median()),
            "epe_px_on_digits": epe(up, truth, digit),
            "samples_off_the_map": float(1 - inside),
        }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="checkpoint file, run directory or shipped model name")
    ap.add_argument("--sequences", type=int, default=64)
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args(argv)
    from stae.checkpoint import load_model
    from stae.errors import StaeError

    torch.set_num_threads(1)
    try:
        res = {"checkpoint": args.checkpoint, **diagnose(load_model(args.checkpoint), args.sequences)}
    except StaeError as e:
        print(f"flow_diagnosis: error: {e}", file=sys.stderr)
        return 2
    for k, v in res.items():
        print(f"{k:34s} {v:.4g}" if isinstance(v, float) else f"{k:34s} {v}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
