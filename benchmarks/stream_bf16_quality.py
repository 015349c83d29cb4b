"""What streaming under bf16 autocast costs in accuracy: each shipped model streams the same
test clips frame by frame (``model.step``) in float32 and under ``torch.autocast("cpu",
torch.bfloat16)`` (E/D's convolutions and the memory's spectral mixing in bfloat16), and the
predictions of the frames after ``--context`` are scored both ways against the truth, with
the largest and mean difference between the two. Speed is bench_stream.py's ``fast-bf16``.

    .venv/bin/python benchmarks/stream_bf16_quality.py [--clips 100] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import perf_common as pc  # noqa: E402  (first: pins the thread pools before torch loads)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from stae.data.moving_mnist import default_dataset  # noqa: E402
from stae.training.batches import make_batch  # noqa: E402
from stae.video_eval import texture_test_set  # noqa: E402
from stae.weights import load_model  # noqa: E402

# shipped model -> (its test data, frames per clip, binary targets)
MODELS = {"vanilla-mmnist": ("moving-mnist", 20, True), "video-gray64": ("textures", 20, False)}


def test_clips(data: str, num: int, frames: int) -> torch.Tensor:
    """The first ``num`` clips of a test split, (num, frames, 1, 64, 64) in [0, 1]."""
    ds = default_dataset("test", binary=True) if data == "moving-mnist" else texture_test_set(num, frames)
    return make_batch(ds, list(range(num)), [0] * num, frames)


@torch.inference_mode()
def stream(model, clips: torch.Tensor, bf16: bool) -> torch.Tensor:
    """Predictions of frames 1..T-1, streamed one frame at a time, float32 out."""
    state, preds = None, []
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for t in range(clips.shape[1] - 1):
            pred, _, state = model.step(clips[:, t], state)
            preds.append(pred.float())
    return torch.stack(preds, 1)


def score(name: str, num: int, context: int) -> dict:
    data, frames, binary = MODELS[name]
    model, clips = load_model(name).eval(), test_clips(data, num, frames)
    truth = clips[:, context:]
    row = {"model": name, "data": f"{data} test split, first {num} clips, frames {context}..{frames - 1} scored"}
    preds = {bf16: stream(model, clips, bf16)[:, context - 1:] for bf16 in (False, True)}
    for bf16, p in preds.items():
        key = "bf16" if bf16 else "fp32"
        row[f"mse_{key}"] = F.mse_loss(p, truth).item()
        if binary:
            row[f"bce_{key}"] = F.binary_cross_entropy(p.clamp(1e-7, 1 - 1e-7), truth).item()
    diff = (preds[True] - preds[False]).abs()
    row.update({"max_abs_diff": diff.max().item(), "mean_abs_diff": diff.mean().item(),
                "mse_change_pct": 100 * (row["mse_bf16"] / row["mse_fp32"] - 1)})
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=100, help="test clips per model (default 100)")
    ap.add_argument("--context", type=int, default=10, help="frames fed before the scored ones (default 10)")
    ap.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all available cores)")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/stream_bf16_quality.json)")
    args = ap.parse_args(argv)
    pc.setup_threads(args.threads)
    rows = [score(name, args.clips, args.context) for name in args.models]
    columns = [("model", "model"), ("mse_fp32", "MSE fp32"), ("mse_bf16", "MSE bf16"), ("mse_change_pct", "MSE change %"),
               ("bce_fp32", "BCE fp32"), ("bce_bf16", "BCE bf16"), ("max_abs_diff", "max |diff|"),
               ("mean_abs_diff", "mean |diff|")]
    print(pc.table(rows, columns))
    print(f"wrote {pc.write_json('stream_bf16_quality', {'benchmark': 'stream_bf16_quality', 'rows': rows}, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
