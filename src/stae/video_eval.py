"""Evaluation on real footage and on the textures generator (issue 13): the numbers behind
``stae evaluate --data VIDEO`` and ``--data textures`` / ``textures-static``.

* :func:`evaluate_videos` -- per video file, the protocol of issue 13: frames read as 64x64 grey
  centre crops (as :class:`~stae.data.video.VideoClipDataset` does), **every** window of
  ``context + 1`` consecutive frames (step 1), ``context`` frames in from an empty memory, the
  next one predicted; MSE (per-pixel L2), PSNR and SSIM averaged over all windows of a clip,
  for the model, copying the last frame and OpenCV DIS extrapolation
  (:mod:`stae.evaluate`), plus each method's MSE as a multiple of copying's.
* :func:`texture_test_set` -- the generator's test split (test photographs, seed 2) with exact
  flow, for the flow end-point error against DIS and zero flow (:func:`stae.evaluate.evaluate`,
  EPE over every pixel of the predicted frame).
* :func:`flicker` -- Sec. 5's "flickering" and "hallucinated flow", measured where the truth is
  static: on test sequences with a still camera (no pan, zoom or rotation), over the background
  pixels whose true flow is zero at both steps t-1 and t, the mean |T_t - T_{t-1}| and the mean
  |T_t| (Euclidean, image pixels) of the model's flow and of DIS flow between the same frames.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from stae.errors import StaeError
from stae.evaluate import evaluate
from stae.model.warp import upsample_flow

TEST_SEED = 2  # the generator's test split seed (stae.data.textures.DEFAULT_SEEDS["test"])
STILL_CAMERA = {"pan": 0.0, "zoom": 0.0, "rotation": 0.0}  # textures-static: only layers move
REAL_METRICS = ("l2", "psnr", "ssim")


def texture_test_set(num: int, frames: int, size=64, channels: int = 1, static: bool = False):
    """``num`` test sequences of the textures generator with exact flow (``static``: still camera)."""
    from stae.data.textures import MovingTextures

    return MovingTextures(num, seed=TEST_SEED, split="test", with_truth=True, num_frames=frames, size=size,
                          channels=channels, **(STILL_CAMERA if static else {}))


def evaluate_videos(model, paths: Sequence[Path], context: int = 10, size: tuple[int, int] = (64, 64),
                    baselines: Sequence[str] = ("copy_last", "dis"), batch_size: int = 16, device: str = "cpu",
                    limit: Optional[int] = None) -> dict[str, Any]:
    """Per video: {"windows", "results": {method: {l2, psnr, ssim}}, "mse_vs_copy": {method: ratio}}."""
    from stae.data.video import VideoClipDataset

    if not paths:
        raise StaeError("evaluate_videos: no videos given")
    clips: dict[str, Any] = {}
    for path in paths:
        ds = VideoClipDataset(path, clip_len=context + 1, size=size, grayscale=model.config.in_channels == 1,
                              split="all", step=1)
        rep = evaluate(model, ds, context=context, mode="next", batch_size=batch_size, limit=limit,
                       baselines=baselines, binary=False, device=device)
        res = {m: {k: v[k] for k in REAL_METRICS} for m, v in rep["results"].items()}
        copy = res.get("copy_last", {}).get("l2")
        clips[Path(path).name] = {
            "windows": rep["protocol"]["clips"], "results": res,
            "mse_vs_copy": {m: r["l2"] / copy for m, r in res.items()} if copy else {}}
    return {"protocol": {"crop": f"centre crop, resized to {size[0]}x{size[1]}, "
                                 + ("grey" if model.config.in_channels == 1 else "colour"),
                         "windows": f"every window of {context + 1} consecutive frames (step 1)",
                         "frames": f"feed frames 0..{context - 1} from an empty memory, predict frame {context}",
                         "metrics": "l2 = MSE per pixel on [0, 1] frames; PSNR; SSIM (Gaussian window); "
                                    "means over all windows of a clip; mse_vs_copy = method MSE / copy-last MSE"},
            "clips": clips}


def _static_pixels(true_flow: torch.Tensor) -> torch.Tensor:
    """(B, T-1, 2, H, W) true flows -> (B, T-2, H, W): zero true flow at steps t-1 and t."""
    still = true_flow.abs().amax(2) < 1e-6
    return still[:, 1:] & still[:, :-1]


@torch.no_grad()
def flicker(model, num: int = 32, context: int = 10, first: int = 3, size: int = 64, batch_size: int = 8,
            dis: bool = True) -> dict[str, Any]:
    """Flicker and flow on static pixels (module docstring), over steps ``first``..``context - 1``."""
    from stae.baselines import dis_backward_flow
    from stae.training.batches import fetch

    if not 1 <= first < context:
        raise StaeError(f"flicker: first must be in [1, context), got {first}")
    ds = texture_test_set(num, context + 1, size, model.config.in_channels, static=True)
    sums = {k: 0.0 for k in ("model_flicker", "model_magnitude", "dis_flicker", "dis_magnitude", "pixels")}
    model.eval()
    for s in range(0, num, batch_size):
        items = fetch(ds, range(s, min(num, s + batch_size)))
        clip = torch.stack([it["clip"] for it in items])  # (B, tau + 1, C, H, W)
        # Steps t = first-1 .. tau-1 (K of them): the model's T_t and the truth flow[t] both live
        # on frame t+1 and point into frame t.
        truth = torch.stack([it["flow"] for it in items])[:, first - 1:context]  # (B, K, 2, H, W)
        mask = _static_pixels(truth).float()  # (B, K-1, H, W)
        flows = {"model": upsample_flow(model(clip[:, :context]).flows[:, first - 1:].flatten(0, 1).float(),
                                        model.stride)}
        if dis:  # DIS backward flow from frame t+1 into frame t, as the truth flow[t]
            pairs = [dis_backward_flow(clip[:, t + 1], clip[:, t]) for t in range(first - 1, context)]
            flows["dis"] = torch.stack(pairs, 1).flatten(0, 1)
        for name, f in flows.items():
            f = f.unflatten(0, (clip.shape[0], -1))  # (B, K, 2, H, W)
            diff = (f[:, 1:] - f[:, :-1]).norm(dim=2)
            sums[f"{name}_flicker"] += float((diff * mask).sum())
            sums[f"{name}_magnitude"] += float((f[:, 1:].norm(dim=2) * mask).sum())
        sums["pixels"] += float(mask.sum())
    n = sums.pop("pixels")
    out = {k: (v / n if n else math.nan) for k, v in sums.items() if dis or not k.startswith("dis")}
    return {"static_pixels": int(n), "sequences": num, **out,
            "protocol": "still-camera textures test sequences (seed 2, test photographs); background pixels whose "
                        "true flow is zero at steps t-1 and t; flicker = mean |T_t - T_{t-1}|, magnitude = mean "
                        "|T_t|, Euclidean, image pixels"}
