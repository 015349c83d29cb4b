"""The paper's application end to end: weakly-supervised semantic segmentation of videos through
label propagation (``stae segment-demo``; docs/propagation.md#segmentation).

Each training sequence has one labelled frame in every ``every`` (frames 0, every, 2 every, ...,
true class maps). A small segmentation network (:class:`SegmentationNet`, one frame in,
per-pixel class scores out) is trained on

* **labelled** -- the labelled frames only;
* **stae** -- the labelled frames plus the labels stae propagates from each labelled frame to
  the frames after it, up to the next labelled one (observed mode, :mod:`stae.propagate`);
* **dis** -- the same with OpenCV DIS flow instead of stae's (same propagation rule);

with the same number of updates, batch size and seed for the three, and scored by mean IoU over
the foreground classes (each class's intersection and union pooled over every frame of the
unseen test sequences; :func:`pooled_iou`).

Classes (semantic: the same class in every sequence): Moving MNIST -- the digit's value
(1 + value, 0 the background; two digits of the same value share a class); real textures --
the foreground layers (1: any foreground layer, 0 the background photograph). The layers'
shapes (ellipse, blob, polygon) were tried as three classes first: on validation sequences no
variant's network learnt them in the demo's budget (IoU <= 0.03), so they cannot rank the
variants.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from stae.errors import StaeError

VARIANTS = ("labelled", "stae", "dis")
NUM_CLASSES = {"moving_mnist": 11, "textures": 2}  # with the background
MODELS = {"moving_mnist": "vanilla-mmnist", "textures": "video-gray64"}  # the shipped model of each


def class_sequences(data: str, split: str, n: int, num_frames: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` sequences of the default ``split`` of ``data`` with their semantic class
    maps (module doc): (clips float (n, T, 1, 64, 64), classes int64 (n, T, 64, 64))."""
    if data == "moving_mnist":
        from stae.data.digits import load_digit_labels
        from stae.data.moving_mnist import DEFAULT_SEEDS, DIGIT_SPLIT, generate

        g = generate(DEFAULT_SEEDS[split], range(n), split=split, num_frames=num_frames, binary=True)
        values = load_digit_labels(DIGIT_SPLIT[split])[g["digit_ids"]]  # (n, K)
        lookup = np.concatenate([np.zeros((n, 1), np.int64), values + 1], 1)  # owner k + 1 -> class
        owner = g["owner"].astype(np.int64)
        classes = np.take_along_axis(lookup, owner.reshape(n, -1), 1).reshape(owner.shape)
        return torch.from_numpy(g["frames"][:, :, None].astype(np.float32) / 255), torch.from_numpy(classes)
    if data == "textures":
        from stae.data import textures as tx

        g = tx.generate(tx.DEFAULT_SEEDS[split], range(n), split=split, num_frames=num_frames)
        return (torch.from_numpy(g["frames"].astype(np.float32) / 255),
                torch.from_numpy((g["owner"] > 0).astype(np.int64)))
    raise StaeError(f"data must be moving_mnist or textures, got {data!r}")


@torch.no_grad()
def training_labels(model, clips: torch.Tensor, classes: torch.Tensor, every: int, variant: str,
                    batch: int = 25) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(frames (N, C, H, W), class maps (N, H, W), the true maps of the same frames) a network
    of ``variant`` trains on: the labelled frames (every ``every``-th, from 0), plus for
    "stae"/"dis" the labels carried from each labelled frame onto the frames up to the next."""
    from stae.propagate import Propagator

    if variant not in VARIANTS:
        raise StaeError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    n, t_len = classes.shape[:2]
    frames, maps, truth = [], [], []
    for s in range(0, t_len, every):
        frames.append(clips[:, s])
        maps.append(classes[:, s])
        truth.append(classes[:, s])
        if variant == "labelled":
            continue
        method = {"stae": "observed", "dis": "dis"}[variant]
        for b in range(0, n, batch):
            carrier = Propagator(model if variant == "stae" else None, classes[b:b + batch, s], (method,))
            carrier.first(clips[b:b + batch, s])
            for t in range(s + 1, min(s + every, t_len)):
                frames.append(clips[b:b + batch, t])
                maps.append(carrier.next(clips[b:b + batch, t])[method])
                truth.append(classes[b:b + batch, t])
    return torch.cat(frames), torch.cat(maps), torch.cat(truth)


class SegmentationNet(nn.Module):
    """A small U-Net: two 2x2 poolings, widths ``w``, ``2w``, ``4w``, 3x3 convolutions, skip
    connections; (B, C, H, W) -> class scores (B, K, H, W), H and W divisible by 4."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 16):
        super().__init__()

        def block(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(),
                                 nn.Conv2d(o, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU())

        w = width
        self.down1, self.down2, self.bottom = block(in_channels, w), block(w, 2 * w), block(2 * w, 4 * w)
        self.up2, self.up1 = block(6 * w, 2 * w), block(3 * w, w)
        self.out = nn.Conv2d(w, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.down1(x)
        b = self.down2(F.max_pool2d(a, 2))
        c = self.bottom(F.max_pool2d(b, 2))
        b = self.up2(torch.cat([F.interpolate(c, scale_factor=2.0), b], 1))
        return self.out(self.up1(torch.cat([F.interpolate(b, scale_factor=2.0), a], 1)))


@dataclass(frozen=True)
class SegmentTraining:
    steps: int = 600
    batch_size: int = 16
    lr: float = 2e-3
    width: int = 16
    seed: int = 0


def train_segmentation(frames: torch.Tensor, maps: torch.Tensor, num_classes: int,
                       o: SegmentTraining = SegmentTraining()) -> SegmentationNet:
    """A :class:`SegmentationNet` trained with class-balanced cross-entropy (class weights
    1 / sqrt(pixel frequency) in ``maps``, so that a rare foreground is not drowned by the
    background) on (frames, maps), ``o.steps`` updates of random batches (the same draws for
    every training set of the same size)."""
    torch.manual_seed(o.seed)
    freq = torch.bincount(maps.flatten(), minlength=num_classes).double() / maps.numel()
    weight = torch.where(freq > 0, freq.clamp_min(1e-6).rsqrt(), torch.zeros_like(freq)).float()
    weight = weight / weight[freq > 0].mean()
    net = SegmentationNet(frames.shape[1], num_classes, o.width)
    opt = torch.optim.Adam(net.parameters(), lr=o.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=o.lr, total_steps=o.steps)
    g = torch.Generator().manual_seed(o.seed)
    for _ in range(o.steps):
        idx = torch.randint(0, len(frames), (o.batch_size,), generator=g)
        loss = F.cross_entropy(net(frames[idx]), maps[idx], weight=weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


def pooled_iou(pred: torch.Tensor, true: torch.Tensor, num_classes: int) -> Optional[float]:
    """Mean over the foreground classes present of IoU = |pred & true| / |pred | true|, each
    pooled over all the maps (..., H, W) given."""
    inter = torch.bincount(true[pred == true].flatten(), minlength=num_classes)
    area_p = torch.bincount(pred.flatten(), minlength=num_classes)
    area_t = torch.bincount(true.flatten(), minlength=num_classes)
    union = (area_p + area_t - inter).double()[1:]
    present = union > 0
    return float((inter.double()[1:][present] / union[present]).mean()) if present.any() else None


@torch.no_grad()
def segment(net: nn.Module, clips: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """The network's class maps int64 (n, T, H, W) of clips (n, T, C, H, W)."""
    frames = clips.flatten(0, 1)
    out = torch.cat([net(frames[b:b + batch]).argmax(1) for b in range(0, len(frames), batch)])
    return out.view(*clips.shape[:2], *clips.shape[-2:])


@dataclass(frozen=True)
class DemoSize:
    """How much of everything the demo uses (``QUICK``: a smoke run of seconds)."""

    train_sequences: int = 30
    test_sequences: int = 100
    every: int = 10  # one labelled frame in every this many
    num_frames: int = 20
    training: SegmentTraining = SegmentTraining()


QUICK = DemoSize(train_sequences=4, test_sequences=4, training=SegmentTraining(steps=20, batch_size=4, width=8))


def segment_demo(data: str, model, size: DemoSize = DemoSize(), variants=VARIANTS, log=None) -> dict:
    """Train one segmentation network per variant (module doc) on ``data`` and score each on the
    unseen test sequences. Returns the result dict (``rows[variant]``: training frames, the
    pooled IoU of its training labels against the truth, the test IoU) and, under
    ``"examples"``, test frames with the truth and each variant's maps for a figure."""
    if size.every < 1 or size.every > size.num_frames:
        raise StaeError(f"--every must be in 1..{size.num_frames}, got {size.every}")
    k = NUM_CLASSES[data]
    clips, classes = class_sequences(data, "train", size.train_sequences, size.num_frames)
    test_clips, test_classes = class_sequences(data, "test", size.test_sequences, size.num_frames)
    rows, maps_of = {}, {}
    for v in variants:
        frames, maps, truth = training_labels(model, clips, classes, size.every, v)
        net = train_segmentation(frames, maps, k, size.training)
        pred = segment(net, test_clips)
        rows[v] = {"training_frames": len(frames), "training_label_iou": pooled_iou(maps, truth, k),
                   "test_iou": pooled_iou(pred, test_classes, k)}
        maps_of[v] = pred[:4, size.every // 2]
        if log:
            log(f"{data}: {v}: {len(frames)} training frames, test IoU {rows[v]['test_iou']:.3f}")
    return {"data": data, "classes": k - 1, "rows": rows,
            "size": {"train_sequences": size.train_sequences, "test_sequences": size.test_sequences,
                     "every": size.every, "num_frames": size.num_frames, **vars(size.training)},
            "examples": {"frames": test_clips[:4, size.every // 2], "truth": test_classes[:4, size.every // 2],
                         **maps_of}}


SEGMENT_OUTPUTS = ("segment.json", "segment.png")
VARIANT_NAMES = {"labelled": "labelled frames only", "stae": "+ stae labels", "dis": "+ DIS labels"}


def write_segment_outputs(results: list[dict], out_dir, force: bool = False, extra: Optional[dict] = None) -> list:
    """``segment.json`` (every dataset's rows, sizes and ``extra``) and ``segment.png`` (per
    dataset, rows of test frames: the frame, the truth and each variant's map) in ``out_dir``,
    written only when complete (:class:`stae.predict.OutputSet`)."""
    import json

    from stae.label_maps import overlay
    from stae.predict import OutputSet
    from stae.viz import grid_image, save_png

    outputs = OutputSet(out_dir, SEGMENT_OUTPUTS, force)
    cells, rows = [], []
    for r in results:
        ex = r["examples"]
        for i in range(len(ex["frames"])):
            frame = ex["frames"][i]
            cells.append([overlay(frame, torch.zeros_like(ex["truth"][i]), 0.0), overlay(frame, ex["truth"][i])]
                         + [overlay(frame, ex[v][i]) for v in r["rows"]])
            rows.append(r["data"].replace("_", " ") if i == 0 else "")
    variants = list(results[0]["rows"]) if results else []
    image = grid_image(cells, col_labels=["frame", "truth"] + [VARIANT_NAMES[v] for v in variants], row_labels=rows,
                       scale=2)
    summary = {**(extra or {}), "results": [{k: v for k, v in r.items() if k != "examples"} for r in results]}
    with outputs:
        outputs.path("segment.json").write_text(json.dumps(summary, indent=2) + "\n")
        save_png(image, outputs.path("segment.png"))
        return outputs.commit()
