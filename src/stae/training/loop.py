"""The training loop: one function, :func:`train`, from a resolved config to a run directory.

Per update (paper Sec. 4, Fig. 2): take clips of tau + 1 frames, feed the first tau to the
model from an empty memory, compare its predictions with the true next frames (the last one
only, or every one after ``loss_warmup``), back-propagate through the unrolled steps, clip
the gradients, step the optimiser. The memory is not carried to the next update ("we update
the parameters and we reset the memory").

Determinism: the data order and the learning rate are functions of (seed, step) only, and
the checkpoint holds the optimiser and RNG states, so on CPU a resumed run reproduces the
uninterrupted run's loss curve and weights bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import nn

from stae.errors import StaeError
from stae.losses import LossWeights, objective
from stae.model.autoencoder import SpatioTemporalAutoencoder
from stae.training import checkpoints as ck
from stae.training import distributed as du
from stae.training.batches import DataOrder, build_datasets, check_channels, make_batch, num_frames_of, val_batches
from stae.training.config import RunConfig, loss_name, resolve
from stae.training.recipes import clip_gradients, learning_rate, make_optimizer
from stae.training.summary import METRICS_NAME, RESOLVED_NAME, RESULT_NAME, write_result


class TrainingDiverged(StaeError):
    """The loss became NaN or Inf; the run stopped without saving the bad weights."""


@dataclass
class TrainResult:
    run_dir: Path
    step: int  # updates done
    total_steps: int
    epoch: int
    last_loss: float
    best_val: Optional[float]
    last_val: Optional[float]
    stopped: str  # "done" | "time limit" | "stop_after"
    resumed_from: Optional[int] = None
    checkpoints: list[str] = field(default_factory=list)


def select_device(name: str, d: du.Dist) -> torch.device:
    """``auto``: CUDA when present, else MPS, else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise StaeError("config key 'train.device': cuda requested but no CUDA device is available")
        return torch.device("cuda", d.local_rank)
    if name == "mps" and not torch.backends.mps.is_available():
        raise StaeError("config key 'train.device': mps requested but MPS is not available")
    return torch.device(name)


def loss_weights(cfg: RunConfig) -> LossWeights:
    """The eq. (5) weights of ``train.loss``, with ``train.huber_weight`` as w_H."""
    w = {"eq5": LossWeights(), "intensity": LossWeights(gradient=0.0), "gradient": LossWeights(intensity=0.0),
         "bce": LossWeights.binary(), "released": LossWeights.released_code()}[loss_name(cfg)]
    return dataclasses.replace(w, huber=cfg.train.huber_weight) if w.huber else w


def clip_loss(model: nn.Module, clip: torch.Tensor, cfg: RunConfig, weights: LossWeights,
              amp_dtype: Optional[torch.dtype] = None, last_only: bool = False) -> tuple[dict[str, torch.Tensor], Any]:
    """Loss of one batch of clips (B, tau + 1, C, H, W): the model sees frames 0..tau-1 and
    ``frames[:, t]`` is compared with clip frame t + 1 -- the last prediction only (Fig. 2;
    ``train.loss_steps: last`` or ``last_only``) or every one after ``train.loss_warmup``.
    Returns (terms, model output)."""
    tau = cfg.data.context
    with torch.autocast(clip.device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
        out = model(clip[:, :tau])
    first = tau - 1 if (last_only or cfg.train.loss_steps == "last") else cfg.train.loss_warmup
    frames, logits, flows = (x[:, first:].float() for x in (out.frames, out.logits, out.flows))
    terms = objective(frames, logits, flows, clip[:, first + 1:tau + 1], weights)
    return terms, out


def _amp_dtype(cfg: RunConfig, device: torch.device) -> Optional[torch.dtype]:
    if cfg.train.amp == "bf16":
        return torch.bfloat16
    if cfg.train.amp == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16  # on CPU bf16 autocast was measured slower (docs/training.md)
    return None


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _finite_params(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


class _Logger:
    """metrics.jsonl + TensorBoard + tqdm, on rank 0 only."""

    def __init__(self, cfg: RunConfig, run_dir: Path, start: int, total: int, main: bool, resumed: bool):
        self.main = main
        self.cfg = cfg
        self.run_dir = run_dir
        self.tb = None
        self.bar = None
        if not main:
            return
        path = run_dir / METRICS_NAME
        if resumed and path.exists():
            # Drop records past the checkpoint: the resumed run writes them again.
            keep = [ln for ln in path.read_text().splitlines() if ln.strip() and _record_step(ln) <= start]
            ck_text = "".join(ln + "\n" for ln in keep)
            from stae.checkpoint import atomic_write_bytes
            atomic_write_bytes(path, ck_text.encode())
        self.jsonl = open(path, "a", buffering=1)
        if cfg.log.tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=start if resumed else None)
        if cfg.log.progress:
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, desc="train")

    def record(self, rec: dict[str, Any]) -> None:
        if not self.main:
            return
        self.jsonl.write(json.dumps(rec) + "\n")
        if self.tb is not None and rec.get("kind") != "session":
            step = rec["step"]
            for k, v in rec.items():
                if k not in ("step", "epoch", "time", "kind") and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"{rec.get('kind', 'train')}/{k}", v, step)

    def image(self, step: int, clip: torch.Tensor, out: Any, tau: int) -> None:
        if not self.main or self.tb is None:
            return
        from stae.viz import panel_row
        img = panel_row(clip[0, tau - 1].detach().float().cpu(), clip[0, tau].detach().float().cpu(),
                        out.frames[0, -1].detach().float().clamp(0, 1).cpu(), out.flows[0, -1].detach().float().cpu())
        self.tb.add_image("train/input_target_prediction_flow", img, step, dataformats="HWC")

    def progress(self, n: int, loss: float, seq_s: float, lr: float) -> None:
        if self.bar is not None:
            self.bar.update(n)
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


def _record_step(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return 1 << 62  # a torn last line: dropped


@torch.no_grad()
def validate(model: nn.Module, val_ds, cfg: RunConfig, weights: LossWeights, device: torch.device,
             d: du.Dist, amp_dtype: Optional[torch.dtype]) -> dict[str, float]:
    """Mean loss terms of the prediction of frame tau + 1 (the paper's protocol, whatever
    ``train.loss_steps``) over the validation clips (first tau + 1 frames of each), all ranks."""
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    bs = max(cfg.train.batch_size // d.world_size, 1) * 4
    for clip in val_batches(val_ds, bs, cfg.data.context + 1, cfg.checkpoint.val_batches, d.rank, d.world_size):
        terms, _ = clip_loss(model, clip.to(device), cfg, weights, amp_dtype, last_only=True)
        n = clip.shape[0]
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v) * n
        count += n
    model.train(was_training)
    keys = sorted(weights_keys(weights))
    t = torch.tensor([sums.get(k, 0.0) for k in keys] + [float(count)], dtype=torch.float64)
    t = du.all_reduce_sum(t.to(device), d).cpu()
    total = float(t[-1])
    return {k: float(t[i]) / total for i, k in enumerate(keys)} if total else {}


def weights_keys(w: LossWeights) -> list[str]:
    keys = ["total"]
    for k in ("intensity", "gradient", "bce", "huber"):
        if getattr(w, k):
            keys.append(k)
    return keys


def prepare_run_dir(run_dir: Path, resume: bool) -> None:
    """A new run needs an empty or absent directory: an existing run is never overwritten."""
    if resume:
        if not run_dir.is_dir():
            raise StaeError(f"--resume: run directory not found: {run_dir}")
        return
    if run_dir.exists() and any(p.name for p in run_dir.iterdir()):
        raise StaeError(f"{run_dir}: exists and is not empty; continue it with --resume {run_dir} "
                        f"or choose another --out")


def load_run_config(run_dir: Union[str, Path], overrides: Optional[list[str]] = None) -> RunConfig:
    """The resolved config of an existing run (plus ``section.key=value`` overrides)."""
    from stae.training.config import apply_overrides, read_config_file
    path = Path(run_dir) / RESOLVED_NAME
    if not path.is_file():
        raise StaeError(f"{run_dir}: no {RESOLVED_NAME}; not a stae run directory")
    return resolve(apply_overrides(read_config_file(path), overrides or []))


def train(cfg: RunConfig, run_dir: Union[str, Path], resume: bool = False,
          stop_after: Optional[int] = None) -> TrainResult:
    """Train per ``cfg`` into ``run_dir`` (or continue it with ``resume``). See module docstring.

    ``stop_after``: stop after this update (with a checkpoint) as if interrupted there; the
    schedule still follows the config's total, so ``resume`` continues the same run.
    """
    run_dir = Path(run_dir)
    threads = torch.get_num_threads()
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    d = du.setup("cuda" if cfg.train.device == "cuda" or (cfg.train.device == "auto" and torch.cuda.is_available()) else "cpu")
    try:
        return _train(cfg, run_dir, resume, d, stop_after)
    finally:
        du.cleanup(d)
        torch.set_num_threads(threads)


def _train(cfg: RunConfig, run_dir: Path, resume: bool, d: du.Dist, stop_after: Optional[int]) -> TrainResult:
    prepare_run_dir(run_dir, resume)  # every rank checks (nothing is written before the barrier)
    du.barrier(d)
    device = select_device(cfg.train.device, d)
    amp_dtype = _amp_dtype(cfg, device)
    weights = loss_weights(cfg)
    tau = cfg.data.context

    train_ds, val_ds = build_datasets(cfg.data)
    check_channels(train_ds, cfg.model.in_channels, "training")
    order = DataOrder(len(train_ds), num_frames_of(train_ds), tau + 1, cfg.train.batch_size, cfg.train.seed,
                      cfg.data.random_offset, d.rank, d.world_size)
    spe = order.steps_per_epoch
    total = cfg.train.max_steps if cfg.train.max_steps > 0 else max(1, math.ceil(cfg.train.epochs * spe))

    _seed_all(cfg.train.seed)  # same initial weights on every rank
    model = SpatioTemporalAutoencoder(cfg.model).to(device)
    opt = make_optimizer(model.parameters(), cfg.train)
    step, best_val, resumed_from = 0, None, None
    if resume:
        if d.is_main:
            ck.repair(run_dir)
        du.barrier(d)
        latest = ck.latest_checkpoint(run_dir)
        state = ck.load_state(latest)
        ck.load_weights_into(model, latest)
        model.to(device)
        try:
            opt.load_state_dict(state["optimizer"])
        except (ValueError, KeyError) as e:
            raise StaeError(f"{latest / ck.STATE_NAME}: optimiser state does not fit train.optimizer="
                            f"{cfg.train.optimizer}: {e}") from None
        ck.set_rng_state(state["rng"])
        step, best_val, resumed_from = int(state["step"]), state.get("best_val"), int(state["step"])
    if d.is_main:
        # New run: the resolved config. Resumed run: rewritten only if --set changed it, so the
        # next resume uses the same settings.
        run_dir.mkdir(parents=True, exist_ok=True)
        from stae.checkpoint import atomic_write_bytes
        path = run_dir / RESOLVED_NAME
        if not (path.is_file() and path.read_text() == cfg.to_yaml()):
            atomic_write_bytes(path, cfg.to_yaml().encode())

    net: nn.Module = model
    if d.enabled:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    net.train()

    log = _Logger(cfg, run_dir, step, total, d.is_main, resume)
    # A session record starts each run and each resume (summary.training_minutes adds them up);
    # result.json, written at the end, marks the run as finished, so a resume removes the old one.
    started_utc, load0, wall0 = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), _load_average(), time.time()
    log.record({"kind": "session", "step": step, "started_utc": started_utc, "resumed": resume})
    if d.is_main and resume:
        (run_dir / RESULT_NAME).unlink(missing_ok=True)
    if resume:
        log.write(f"resumed {run_dir} at step {step} (epoch {order.epoch_of(step) if step < total else step // spe})")
    t_start = time.perf_counter()
    t_log, seqs_since = t_start, 0
    last_loss, last_val, stopped = math.nan, None, "done"
    written: list[str] = []
    last_saved = step
    ema: Optional[float] = None

    def evaluate_and_save(at: int) -> None:
        nonlocal best_val, last_val
        nonlocal last_saved
        if not _finite_params(model):
            raise TrainingDiverged(f"weights became NaN/Inf at step {at}; nothing saved, the last good "
                                   f"checkpoint is {_last_good(run_dir)}")
        improved = False
        if cfg.checkpoint.validate:
            v = validate(model, val_ds, cfg, weights, device, d, amp_dtype)
            if v:
                last_val = v["total"]
                log.record({"kind": "val", "step": at, "time": time.perf_counter() - t_start, **v})
                log.write(f"step {at}: validation loss {last_val:.6g}"
                          + (" (best so far)" if best_val is None or last_val < best_val else ""))
                if best_val is None or last_val < best_val:
                    best_val, improved = last_val, True
        if d.is_main:
            state = {"format": ck.STATE_FORMAT, "version": ck.STATE_VERSION, "step": at,
                     "epoch": at // spe, "position": at % spe, "optimizer": opt.state_dict(),
                     "rng": ck.rng_state(), "best_val": best_val, "seed": cfg.train.seed}
            path = ck.write_checkpoint(run_dir, ck.step_dir_name(at), model, state)
            written.append(path.name)
            if improved:
                ck.write_checkpoint(run_dir, ck.BEST, model, state)
            ck.prune(run_dir, cfg.checkpoint.keep_last)
        last_saved = at
        du.barrier(d)

    try:
        while step < total:
            if stop_after is not None and step >= stop_after:
                stopped = "stop_after"
                break
            if cfg.train.max_minutes > 0:
                over = (time.perf_counter() - t_start) / 60 > cfg.train.max_minutes
                if du.broadcast_flag(over, d, device):
                    stopped = "time limit"
                    break
            t_step = time.perf_counter()
            idx, offs = order.indices(step)
            clip = make_batch(train_ds, idx, offs, tau + 1).to(device, non_blocking=True)
            lr = learning_rate(cfg.train, step, spe, total)
            for g in opt.param_groups:
                g["lr"] = lr
            terms, out = clip_loss(net, clip, cfg, weights, amp_dtype)
            # Every rank must agree to stop: sum the losses (also gives the global mean to log).
            packed = torch.stack([terms[k].detach().float() for k in weights_keys(weights)])
            packed = du.all_reduce_sum(packed, d) / d.world_size
            loss_val = float(packed[0])
            if not math.isfinite(loss_val):
                log.record({"kind": "diverged", "step": step + 1, "loss": str(loss_val)})
                raise TrainingDiverged(
                    f"loss became {loss_val} at step {step + 1} (epoch {order.epoch_of(step)}, lr {lr:.3g}); "
                    f"stopped without saving these weights; last good checkpoint: {_last_good(run_dir)}. "
                    f"Try a lower train.lr or train.grad_clip")
            opt.zero_grad(set_to_none=True)
            terms["total"].backward()
            if step < cfg.train.flow_warmup_steps:  # Theta held at its initial (identity) warp
                for p in model.flow.parameters():
                    p.grad = None  # the optimiser skips parameters without a gradient
            clip_gradients(model.parameters(), cfg.train)
            opt.step()
            step += 1
            last_loss = loss_val
            seqs_since += cfg.train.batch_size
            now = time.perf_counter()
            inst = cfg.train.batch_size / max(now - t_step, 1e-9)
            ema = inst if ema is None else 0.9 * ema + 0.1 * inst
            log.progress(1, loss_val, ema, lr)
            if step % cfg.log.every_steps == 0 or step == total:
                rec = {"kind": "train", "step": step, "epoch": order.epoch_of(step - 1), "lr": lr,
                       **{k: float(v) for k, v in zip(weights_keys(weights), packed)}}
                rec["loss"] = rec.pop("total")
                rec["seq_per_s"] = seqs_since / max(now - t_log, 1e-9)
                rec["time"] = now - t_start
                log.record(rec)
                t_log, seqs_since = now, 0
            if cfg.log.image_every and step % cfg.log.image_every == 0:
                log.image(step, clip, out, tau)
            if step % cfg.checkpoint.every_steps == 0 or step == total:
                evaluate_and_save(step)
        if stopped != "done" and step > last_saved:
            evaluate_and_save(step)
    finally:
        log.close()
    if d.is_main:
        write_result(run_dir, {"stopped": stopped, "total_steps": total, "resumed_from": resumed_from,
                               "started_utc": started_utc, "session_wall_minutes": round((time.time() - wall0) / 60, 2),
                               "load_average_start": load0, "load_average_end": _load_average()})
    return TrainResult(run_dir, step, total, step // spe, last_loss, best_val, last_val, stopped,
                       resumed_from, written)


def _load_average() -> Optional[list[float]]:
    """1/5/15-minute load average (other work on the machine slows training), where the OS has one."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _last_good(run_dir: Path) -> str:
    steps = ck.step_checkpoints(run_dir)
    return str(steps[-1][1]) if steps else "none (no checkpoint was written yet)"
