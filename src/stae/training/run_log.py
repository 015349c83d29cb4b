"""What a run reports while it trains, on rank 0 only: ``metrics.jsonl`` (always), TensorBoard
scalars and image panels (when ``log.tensorboard`` and the ``tensorboard`` extra is installed;
without it, said once), and a tqdm progress bar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from stae.training import run_dir as rd


class RunLog:
    def __init__(self, cfg, run_dir: Path, start: int, total: int, main: bool, resumed: bool) -> None:
        self.main = main
        self.tb = None
        self.bar = None
        if not main:
            return
        if resumed:
            rd.trim_metrics(run_dir, start)
        self.jsonl = open(run_dir / rd.METRICS_NAME, "a", buffering=1)
        if cfg.log.tensorboard:
            self.tb = _summary_writer(run_dir / rd.TENSORBOARD_DIR, start if resumed else None)
        if cfg.log.progress:
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, desc="train")
        if cfg.log.tensorboard and self.tb is None:
            self.write("TensorBoard logging is off: the tensorboard package is not installed "
                       "(pip install 'stae[tensorboard]'); metrics.jsonl is written as always")

    def record(self, rec: dict[str, Any]) -> None:
        if not self.main:
            return
        self.jsonl.write(json.dumps(rec) + "\n")
        if self.tb is not None and rec.get("kind") != "session":
            for k, v in rec.items():
                if k not in ("step", "epoch", "time", "kind") and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"{rec.get('kind', 'train')}/{k}", v, rec["step"])

    def image(self, step: int, clip: torch.Tensor, out: Any, tau: int) -> None:
        """Input, target, prediction and flow of the batch's first clip, as one panel."""
        if not self.main or self.tb is None:
            return
        from stae.viz import panel_row
        img = panel_row(clip[0, tau - 1].detach().float().cpu(), clip[0, tau].detach().float().cpu(),
                        out.frames[0, -1].detach().float().clamp(0, 1).cpu(), out.flows[0, -1].detach().float().cpu())
        self.tb.add_image("train/input_target_prediction_flow", img, step, dataformats="HWC")

    def progress(self, loss: float, seq_s: float, lr: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4g}", seq_s=f"{seq_s:.2f}", lr=f"{lr:.2e}", refresh=False)

    def write(self, msg: str) -> None:
        if not self.main:
            return
        if self.bar is not None:
            self.bar.write(msg)
        else:
            print(msg, flush=True)

    def close(self) -> None:
        if not self.main:
            return
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
        self.jsonl.close()


def _summary_writer(path: Path, purge_step):
    """A TensorBoard writer, or None when the tensorboard package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(path), purge_step=purge_step)
