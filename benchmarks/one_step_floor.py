"""Issue 15: where the blur of a rollout starts -- the one-step prediction, and why it is blurred.

A 10 -> 10 rollout can be no sharper than the model's prediction from TRUE frames (teacher
forcing). This script measures, on the VALIDATION split (seed 1, first 96 clips; never the test
split), for each model and each of frames 10..19 predicted from the true frames before it:

* the one-step MSE per frame (OpenSTL's definition: squared error summed over a frame's pixels);
* the same decoder drawing the *current* frame (E's features warped by the zero flow, decoded,
  against Y_t): what E and D make of a frame that does not move;
* the predicted flow's end-point error on the digit pixels of the predicted frame (image pixels),
  beside the zero flow's and the constant-velocity guess's (each digit pixel of the predicted
  frame moved by its digit's displacement of the step before: wrong only at a bounce);
* E and D trained afresh (from the model's weights) for ``--minutes`` each to redraw single
  training frames, and to draw them moved by a known whole-pixel shift through the model's warp:
  what the encoder, warp and decoder can draw when the flow is exact.

    .venv/bin/python benchmarks/one_step_floor.py [MODEL ...] [--minutes 4] [--out FILE]

Writes benchmarks/results/one_step_floor.json (or FILE). Two threads.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "one_step_floor.json"
CLIPS, CONTEXT, HORIZON = 96, 10, 10
MAX_SHIFT = 4  # image pixels: about the digits' speed (0.1 of the 36-pixel free canvas per frame)


@torch.no_grad()
def one_step(model, frames: torch.Tensor, flow: torch.Tensor, guess: torch.Tensor, owner: torch.Tensor) -> dict:
    """Teacher-forced scores of frames CONTEXT..CONTEXT+HORIZON-1 (see the module docstring)."""
    from stae.metrics import epe, mse_per_frame
    from stae.model.warp import upsample_flow

    first, last = CONTEXT - 1, CONTEXT + HORIZON - 1  # inputs Y_t, t = first..last-1
    out = model(frames[:, :last], first_output=first)
    truth, current = frames[:, first + 1:last + 1], frames[:, first:last]
    x = model.encoder(current.flatten(0, 1))
    still, _ = model.head(x, flow=x.new_zeros(x.shape[0], 2, *x.shape[-2:]), frame=current.flatten(0, 1))
    still = model.to_image(still).view_as(current)
    grid = out.flows.flatten(0, 1)
    pred_flow = upsample_flow(grid, frames.shape[-1] // grid.shape[-1])
    true_flow, prev_flow = flow[:, first:last].flatten(0, 1), guess[:, first - 1:last - 1].flatten(0, 1)
    digit = owner[:, first + 1:last + 1].flatten(0, 1) > 0
    return {"one_step_mse_per_frame": mse_per_frame(out.frames, truth),
            "current_frame_redrawn_mse_per_frame": mse_per_frame(still, current),
            "flow_epe_digit_px": {"model": epe(pred_flow, true_flow, digit),
                                  "zero_flow": epe(torch.zeros_like(true_flow), true_flow, digit),
                                  "constant_velocity": epe(prev_flow, true_flow, digit)}}


def train_to_draw(model, val_frames: torch.Tensor, minutes: float, max_shift: int, seed: int = 0) -> dict:
    """Train copies of E and D (Adam 1e-3, BCE, 8 training clips = 160 frames per update) for
    ``minutes`` to draw a frame moved by a known whole-pixel shift, uniform in
    [-max_shift, max_shift]^2 per frame, through the model's own warp of its features (the shift
    halved onto the feature grid: a half feature pixel when it is odd); 0: redraw the frame
    itself. The target is the frame moved exactly (no interpolation). MSE per frame on
    ``val_frames`` (with shifts drawn once) before and after, and split by whether a shift
    component is odd."""
    from stae.data.moving_mnist import generate
    from stae.model.warp import warp

    enc, dec = copy.deepcopy(model.encoder), copy.deepcopy(model.decoder)
    padding = model.config.warp_padding

    def flow(shift: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return shift[:, :, None, None].expand(-1, -1, *like.shape[-2:]).contiguous()

    def errors(y: torch.Tensor, shift: torch.Tensor, logits: bool = False) -> torch.Tensor:
        x = enc(y)
        drawn = dec(warp(x, flow(shift * x.shape[-1] / y.shape[-1], x), padding))
        moved = warp(y, flow(shift, y), "zeros")
        if logits:
            return F.binary_cross_entropy_with_logits(drawn, moved)
        return (torch.sigmoid(drawn) - moved).pow(2).sum((1, 2, 3))

    rng = np.random.default_rng(seed)
    val_shift = torch.from_numpy(rng.integers(-max_shift, max_shift + 1, (len(val_frames), 2))).float()
    odd = (val_shift.remainder(2) != 0).any(1)

    def score() -> dict:
        with torch.no_grad():
            e = errors(val_frames, val_shift)
        out = {"mse_per_frame": float(e.mean())}
        if max_shift > 0:
            out.update(even_shift=float(e[~odd].mean()), odd_shift=float(e[odd].mean()))
        return out

    before, updates = score(), 0
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3)
    t_end = time.perf_counter() + 60 * minutes
    while time.perf_counter() < t_end:
        batch = generate(0, rng.integers(0, 10_000, 8))["frames"]  # the training split (seed 0)
        y = torch.from_numpy(batch).float().flatten(0, 1)[:, None] / 255
        shift = torch.from_numpy(rng.integers(-max_shift, max_shift + 1, (len(y), 2))).float()
        loss = errors(y, shift, logits=True)
        opt.zero_grad()
        loss.backward()
        opt.step()
        updates += 1
    return {"minutes": minutes, "max_shift_px": max_shift, "updates": updates, "before": before, "after": score()}


def main(argv: list[str]) -> int:
    from stae.data.moving_mnist import flow_from_owner, generate
    from stae.machine import describe
    from stae.weights import load_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", default=["rollout-mmnist", "vanilla-mmnist"], metavar="MODEL")
    ap.add_argument("--minutes", type=float, default=4.0, help="each of the two drawing trainings per model (default 4)")
    ap.add_argument("--out", type=Path, default=OUT, help="JSON path (default benchmarks/results/one_step_floor.json)")
    args = ap.parse_args(argv)
    models = {spec: load_model(spec).eval() for spec in args.models}  # a bad name fails before any work
    torch.manual_seed(0)
    torch.set_num_threads(2)
    val = generate(1, np.arange(CLIPS), split="val", num_frames=CONTEXT + HORIZON, with_truth=True)
    frames = torch.from_numpy(val["frames"]).float()[:, :, None] / 255
    flow, owner = torch.from_numpy(val["flow"]), torch.from_numpy(val["owner"])
    # guess[j] = positions[j] - positions[j + 1] on the digits of frame j + 2: the constant-velocity flow
    guess = torch.from_numpy(flow_from_owner(val["owner"][:, 1:], val["positions"][:, :-1]))
    rows = {}
    for spec, model in models.items():
        rows[spec] = one_step(model, frames, flow, guess, owner)
        for key, shift in (("redraw_training", 0), ("known_shift_training", MAX_SHIFT)):
            rows[spec][key] = train_to_draw(model, frames[:, CONTEXT], args.minutes, shift)
        print(spec, json.dumps(rows[spec]), flush=True)
    args.out.write_text(json.dumps({
        "benchmark": "one_step_floor", "data": f"validation split (seed 1), first {CLIPS} clips; frames "
        f"{CONTEXT}..{CONTEXT + HORIZON - 1} predicted from the true frames before them",
        "rows": rows, "machine": describe(), "command": "python benchmarks/one_step_floor.py " + " ".join(argv)},
        indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    from stae.errors import run_script

    sys.exit(run_script("one_step_floor.py", main, sys.argv[1:]))
