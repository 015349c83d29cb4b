"""The training loop, read top to bottom as nanoGPT's ``train.py``: restore (or start) a run,
then repeat one :func:`train_step`, evaluating and saving at checkpoint steps.

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
import math
import random
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from stae.errors import StaeError
from stae.losses import LossWeights, objective
from stae.machine import load_average
from stae.model.autoencoder import SpatioTemporalAutoencoder
from stae.training import distributed as du
from stae.training import run_dir as rd
from stae.training.batches import (DataOrder, build_datasets, check_channels, make_batch, make_batch_with_flow,
                                   num_frames_of, val_batches)
from stae.training.recipes import clip_gradients, learning_rate, make_optimizer
from stae.training.rollout import rollout_clip_loss
from stae.training.run_config import RunConfig, apply_overrides, clip_frames, loss_name, resolve
from stae.training.run_log import RunLog
from stae.training.summary import write_result


# How a run stopped on a signal (TrainResult.stopped); ``stae train`` exits with 128 + the number.
SIGNAL_NAMES = ("SIGINT", "SIGTERM")


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
    stopped: str  # "done" | "time limit" | "stop_after" | "SIGINT" | "SIGTERM" (a checkpoint of the step reached)
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
    w = dataclasses.replace(w, huber=cfg.train.huber_weight) if w.huber else w
    return dataclasses.replace(w, flow_l1=cfg.train.flow_l1_weight, flow_temporal=cfg.train.flow_temporal_weight,
                               flow_supervision=cfg.train.flow_supervision_weight)


def clip_loss(model: nn.Module, clip: torch.Tensor, cfg: RunConfig, weights: LossWeights,
              amp_dtype: Optional[torch.dtype] = None, last_only: bool = False,
              true_flows: Optional[torch.Tensor] = None) -> tuple[dict[str, torch.Tensor], Any]:
    """Loss of one batch of clips (B, tau + 1, C, H, W): the model sees frames 0..tau-1 and
    ``frames[:, t]`` is compared with clip frame t + 1 -- the last prediction only (Fig. 2;
    ``train.loss_steps: last`` or ``last_only``) or every one after ``train.loss_warmup``.
    ``true_flows`` (B, tau, 2, H, W): the clip's true backward flows, for the supervision term.
    Returns (terms, model output of the steps the loss looks at: ``out.frames[:, -1]`` is the
    prediction of frame tau + 1)."""
    tau = cfg.data.context
    first = tau - 1 if (last_only or cfg.train.loss_steps == "last") else cfg.train.loss_warmup
    with torch.autocast(clip.device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
        # Theta, warp and D only for the predictions the loss looks at (the same values:
        # SpatioTemporalAutoencoder.forward's first_output); the output holds steps first..tau-1.
        out = model(clip[:, :tau], first_output=first)
    frames, logits, flows = (x.float() for x in (out.frames, out.logits, out.flows))
    truth = true_flows[:, first:tau] if true_flows is not None else None  # step t warps frame t onto t + 1
    terms = objective(frames, logits, flows, clip[:, first + 1:tau + 1], weights, truth)
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


@torch.no_grad()
def validate(model: nn.Module, val_ds, cfg: RunConfig, weights: LossWeights, device: torch.device,
             d: du.Dist, amp_dtype: Optional[torch.dtype]) -> dict[str, float]:
    """Mean loss terms of the prediction of frame tau + 1 (the paper's protocol, whatever
    ``train.loss_steps``) over the validation clips (first tau + 1 frames of each), all ranks.
    Rollout training: of the ``rollout_horizon`` predictions fed back after tau frames."""
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    bs = max(cfg.train.batch_size // d.world_size, 1) * 4
    for clip in val_batches(val_ds, bs, clip_frames(cfg), cfg.checkpoint.val_batches, d.rank, d.world_size):
        if cfg.train.rollout_horizon:  # the benchmark: K_max predictions fed back, scored all
            terms, _ = rollout_clip_loss(model, clip.to(device), cfg, weights, 0, amp_dtype, validation=True)
        else:
            terms, _ = clip_loss(model, clip.to(device), cfg, weights, amp_dtype, last_only=True)
        n = clip.shape[0]
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v) * n
        count += n
    model.train(was_training)
    keys = sorted(k for k in weights_keys(weights) if k != "flow_supervision")  # no true flow in validation
    t = torch.tensor([sums.get(k, 0.0) for k in keys] + [float(count)], dtype=torch.float64)
    t = du.all_reduce_sum(t.to(device), d).cpu()
    total = float(t[-1])
    return {k: float(t[i]) / total for i, k in enumerate(keys)} if total else {}


def weights_keys(w: LossWeights) -> list[str]:
    keys = ["total"]
    for k in ("intensity", "gradient", "bce", "huber", "flow_l1", "flow_temporal", "flow_supervision"):
        if getattr(w, k):
            keys.append(k)
    return keys




# ----------------------------------------------------------------------------- one update
def train_step(model: nn.Module, opt: torch.optim.Optimizer, clip: torch.Tensor, cfg: RunConfig,
               weights: LossWeights, step: int, lr: Optional[float] = None, *, net: Optional[nn.Module] = None,
               amp_dtype: Optional[torch.dtype] = None, dist: Optional[du.Dist] = None,
               true_flows: Optional[torch.Tensor] = None) -> tuple[dict[str, float], Any]:
    """One update on a batch of clips (B, tau + 1, C, H, W): loss, backward, Theta held during
    ``train.flow_warmup_steps``, gradient clipping, optimiser step.

    ``net`` is the module to run (the DDP wrapper of ``model``, default ``model``); ``lr`` (if
    given) is set on every parameter group first. The loss terms are averaged over the ranks
    of ``dist``, so every rank sees the same values and agrees to stop: a NaN/Inf loss raises
    :class:`TrainingDiverged` before the optimiser step. ``true_flows``: the batch's true flows
    (``train.flow_supervision_weight``). Returns (loss terms, model output).
    """
    if lr is not None:
        for g in opt.param_groups:
            g["lr"] = lr
    if cfg.train.rollout_horizon:  # rollout training (training/rollout.py); one process
        d = dist or du.Dist()
        terms, out = rollout_clip_loss(model, clip, cfg, weights, step, amp_dtype, d.rank, d.world_size)
    else:
        terms, out = clip_loss(net or model, clip, cfg, weights, amp_dtype, true_flows=true_flows)
    keys = weights_keys(weights)
    packed = torch.stack([terms[k].detach().float() for k in keys])
    if dist is not None:
        packed = du.all_reduce_sum(packed, dist) / dist.world_size
    losses = {k: float(v) for k, v in zip(keys, packed)}
    if not math.isfinite(losses["total"]):
        raise TrainingDiverged(f"loss became {losses['total']} at step {step + 1}"
                               + (f" (lr {lr:.3g})" if lr is not None else ""))
    opt.zero_grad(set_to_none=True)
    terms["total"].backward()
    if step < cfg.train.flow_warmup_steps:  # Theta held at its initial (identity) warp
        for p in model.flow.parameters():
            p.grad = None  # the optimiser skips parameters without a gradient
    clip_gradients(model.parameters(), cfg.train)
    opt.step()
    return losses, out


# ----------------------------------------------------------------------------- the run
@dataclass
class _Run:
    """Everything a training run holds between updates (rank-local)."""

    cfg: RunConfig
    run_dir: Path
    d: du.Dist
    device: torch.device
    amp_dtype: Optional[torch.dtype]
    weights: LossWeights
    train_ds: Dataset
    val_ds: Dataset
    order: DataOrder
    total: int
    model: SpatioTemporalAutoencoder
    net: nn.Module
    opt: torch.optim.Optimizer
    step: int = 0
    best_val: Optional[float] = None
    last_val: Optional[float] = None
    resumed_from: Optional[int] = None
    written: list[str] = field(default_factory=list)


def train(cfg: RunConfig, run_dir: Union[str, Path], resume: bool = False,
          stop_after: Optional[int] = None) -> TrainResult:
    """Train per ``cfg`` into ``run_dir`` (or continue it with ``resume``). See module docstring.

    ``stop_after``: stop after this update (with a checkpoint) as if interrupted there; the
    schedule still follows the config's total, so ``resume`` continues the same run.
    """
    threads = torch.get_num_threads()
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    on_cuda = cfg.train.device == "cuda" or (cfg.train.device == "auto" and torch.cuda.is_available())
    d = du.setup("cuda" if on_cuda else "cpu")
    try:
        run = _restore(cfg, Path(run_dir), resume, d)
        return _train(run, resume, stop_after)
    finally:
        du.cleanup(d)
        torch.set_num_threads(threads)


def _restore(cfg: RunConfig, run_dir: Path, resume: bool, d: du.Dist) -> _Run:
    """Data, model and optimiser of a new run, or of ``run_dir``'s newest checkpoint."""
    rd.prepare(run_dir, resume)  # every rank checks (nothing is written before the barrier)
    du.barrier(d)
    device = select_device(cfg.train.device, d)
    train_ds, val_ds = build_datasets(cfg.data, truth=bool(cfg.train.flow_supervision_weight))
    check_channels(train_ds, cfg.model.in_channels, "training")
    if d.enabled and cfg.train.rollout_horizon:
        raise StaeError("config key 'train.rollout_horizon': rollout training runs in one process (no torchrun)")
    order = DataOrder(len(train_ds), num_frames_of(train_ds), clip_frames(cfg), cfg.train.batch_size, cfg.train.seed,
                      cfg.data.random_offset, d.rank, d.world_size)
    total = cfg.train.max_steps if cfg.train.max_steps > 0 else max(1, math.ceil(cfg.train.epochs * order.steps_per_epoch))
    _seed_all(cfg.train.seed)  # same initial weights on every rank
    model = SpatioTemporalAutoencoder(cfg.model).to(device)
    run = _Run(cfg, run_dir, d, device, _amp_dtype(cfg, device), loss_weights(cfg), train_ds, val_ds, order,
               total, model, model, make_optimizer(model.parameters(), cfg.train))
    if resume:
        _load_checkpoint(run)
    elif cfg.train.init_weights:
        _load_init_weights(run.model, cfg.train.init_weights)
    if d.is_main:
        # New run: the resolved config. Resumed run: rewritten only if --set changed it, so the
        # next resume uses the same settings.
        run_dir.mkdir(parents=True, exist_ok=True)
        rd.write_resolved(run_dir, cfg.to_yaml())
    if d.enabled:
        ids = [device.index] if device.type == "cuda" else None
        run.net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    run.net.train()
    return run


def _load_init_weights(model: SpatioTemporalAutoencoder, name: str) -> None:
    """``train.init_weights``: copy a saved model's weights into ``model`` (same architecture)."""
    from stae.weights import load_model

    try:
        src = load_model(name)
    except (StaeError, OSError) as e:
        raise StaeError(f"config key 'train.init_weights': {e}") from None
    # how it computes, or what its rollouts feed back: keys that leave the weights' meaning alone
    free = {"fft_conv", "subpixel_decoder", "recompute_steps", "rollout_feedback"}
    mine, theirs = model.config.to_dict(), src.config.to_dict()
    bad = sorted(k for k in mine.keys() | theirs.keys() if k not in free and mine.get(k) != theirs.get(k))
    if bad:
        raise StaeError(f"config key 'train.init_weights': {name} does not fit the model section: "
                        f"model.{bad[0]} is {mine.get(bad[0])!r} here, {theirs.get(bad[0])!r} in {name}")
    model.load_state_dict(src.state_dict())


def _load_checkpoint(run: _Run) -> None:
    """Weights, optimiser, RNG states and counters of the run directory's newest readable
    checkpoint (a corrupt newest one is skipped, with a warning, for the intact one before it; a
    run that failed before its first checkpoint starts again from step 0). Refused before
    anything is written: a run already at or past ``train.max_steps``."""
    if run.d.is_main:
        rd.repair(run.run_dir)
    du.barrier(run.d)
    found = _newest_readable(run)
    if found is None:
        warnings.warn(f"{run.run_dir}: no checkpoint yet; the run starts again from step 0", stacklevel=2)
        return
    latest, state = found
    if int(state["step"]) >= run.total:
        done = (run.run_dir / rd.RESULT_NAME).is_file() and int(state["step"]) == run.total
        raise StaeError(f"{run.run_dir}: " + (f"already finished ({run.total} updates); nothing to do" if done else
                        f"already at step {int(state['step'])}, and the config's total is {run.total} updates "
                        f"(train.max_steps or epochs)") + "; to train longer, --resume with a larger --set train.max_steps")
    run.model.to(run.device)
    try:
        run.opt.load_state_dict(state["optimizer"])
    except (ValueError, KeyError) as e:
        raise StaeError(f"{latest / rd.STATE_NAME}: optimiser state does not fit train.optimizer="
                        f"{run.cfg.train.optimizer}: {e}") from None
    rd.set_rng_state(state["rng"])
    run.step = run.resumed_from = int(state["step"])
    run.best_val = state.get("best_val")


def _newest_readable(run: _Run) -> Optional[tuple[Path, dict[str, Any]]]:
    """(checkpoint dir, training state) of the newest step checkpoint whose state and weights load
    into ``run.model``; None without any. When none loads, the newest one's error is raised."""
    first: Optional[StaeError] = None
    for _, ckpt in reversed(rd.step_checkpoints(run.run_dir)):
        try:
            state = rd.load_state(ckpt)
            rd.load_weights_into(run.model, ckpt)
            if first is not None:
                warnings.warn(f"skipping {first} -- resuming from the intact {ckpt.name}", stacklevel=3)
            return ckpt, state
        except StaeError as e:
            first = first or e
    if first is not None:
        raise first
    return None


class _Signals:
    """SIGINT (Ctrl-C) and SIGTERM while training: the first asks the loop to stop after the
    current update, with a checkpoint; a second SIGINT stops at once (KeyboardInterrupt), without
    one. Installed only in the main thread; the previous handlers come back on exit."""

    def __init__(self) -> None:
        self.received: Optional[int] = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> "_Signals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum
        print(f"\nstae: {signal.Signals(signum).name} received: saving a checkpoint after this update "
              f"(Ctrl-C again stops at once, without one)", file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        for sig, old in self.previous.items():
            signal.signal(sig, old)

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received is not None else ""


def _stop_reason(run: _Run, t_start: float, stop_after: Optional[int], signals: _Signals) -> Optional[str]:
    """Why the loop stops before the next update (None: it goes on). Every rank gets the same
    answer: rank 0's clock and signals decide."""
    cfg, d = run.cfg, run.d
    if stop_after is not None and run.step >= stop_after:
        return "stop_after"
    if d.enabled or signals.received is not None:
        if du.broadcast_flag(signals.received is not None, d, run.device):
            return signals.name or "SIGTERM"
    over = cfg.train.max_minutes > 0 and (time.perf_counter() - t_start) / 60 > cfg.train.max_minutes
    if cfg.train.max_minutes > 0 and du.broadcast_flag(over, d, run.device):
        return "time limit"
    return None


def _train(run: _Run, resume: bool, stop_after: Optional[int]) -> TrainResult:
    cfg, d, tau = run.cfg, run.d, run.cfg.data.context
    log = RunLog(cfg, run.run_dir, run.step, run.total, d.is_main, resume)
    # A session record starts each run and each resume (summary.training_minutes adds them up);
    # result.json, written at the end, marks the run as finished, so a resume removes the old one.
    started_utc, load0, wall0 = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), load_average(), time.time()
    log.record({"kind": "session", "step": run.step, "started_utc": started_utc, "resumed": resume})
    if d.is_main and resume:
        (run.run_dir / rd.RESULT_NAME).unlink(missing_ok=True)
    if resume:
        log.write(f"resumed {run.run_dir} at step {run.step}")
    t_start = t_log = time.perf_counter()
    seqs_since, last_loss, stopped, last_saved, ema = 0, math.nan, "done", run.step, None
    signals = _Signals().__enter__()
    try:
        while run.step < run.total:
            # --- stop early: stop_after (a test's interruption), SIGINT/SIGTERM, or the time budget
            reason = _stop_reason(run, t_start, stop_after, signals)
            if reason is not None:
                stopped = reason
                break
            # --- one update
            t_step = time.perf_counter()
            idx, offs = run.order.indices(run.step)
            clip, true_flows = _batch(run, idx, offs)
            lr = learning_rate(cfg.train, run.step, run.order.steps_per_epoch, run.total)
            losses, out = _guarded_step(run, clip, lr, log, true_flows)
            run.step += 1
            last_loss, seqs_since = losses["total"], seqs_since + cfg.train.batch_size
            # --- log, evaluate and save
            now = time.perf_counter()
            inst = cfg.train.batch_size / max(now - t_step, 1e-9)
            ema = inst if ema is None else 0.9 * ema + 0.1 * inst
            log.progress(last_loss, ema, lr)
            if run.step % cfg.log.every_steps == 0 or run.step == run.total:
                log.record(_train_record(run, losses, lr, seqs_since / max(now - t_log, 1e-9), now - t_start))
                t_log, seqs_since = now, 0
            if cfg.log.image_every and run.step % cfg.log.image_every == 0:
                log.image(run.step, clip, out, tau)
            if run.step % cfg.checkpoint.every_steps == 0 or run.step == run.total:
                _evaluate_and_save(run, log, t_start)
                last_saved = run.step
        if stopped != "done" and run.step > last_saved:  # interrupted: save now, validate later
            _evaluate_and_save(run, log, t_start, with_validation=stopped not in SIGNAL_NAMES)
    finally:
        signals.__exit__()
        log.close()
    if d.is_main:
        write_result(run.run_dir, {"stopped": stopped, "total_steps": run.total, "resumed_from": run.resumed_from,
                                   "started_utc": started_utc, "session_wall_minutes": round((time.time() - wall0) / 60, 2),
                                   "load_average_start": load0, "load_average_end": load_average()})
    return TrainResult(run.run_dir, run.step, run.total, run.step // run.order.steps_per_epoch, last_loss,
                       run.best_val, run.last_val, stopped, run.resumed_from, run.written)


def _batch(run: _Run, idx, offs) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """The clips of one update and, with ``train.flow_supervision_weight``, their true flows."""
    if not run.cfg.train.flow_supervision_weight:
        return make_batch(run.train_ds, idx, offs, clip_frames(run.cfg)).to(run.device, non_blocking=True), None
    clip, flows = make_batch_with_flow(run.train_ds, idx, offs, clip_frames(run.cfg))
    return clip.to(run.device, non_blocking=True), flows.to(run.device, non_blocking=True)


def _guarded_step(run: _Run, clip: torch.Tensor, lr: float, log: RunLog,
                  true_flows: Optional[torch.Tensor] = None) -> tuple[dict[str, float], Any]:
    """:func:`train_step`; a divergence is logged and named with the last good checkpoint."""
    try:
        return train_step(run.model, run.opt, clip, run.cfg, run.weights, run.step, lr, net=run.net,
                          amp_dtype=run.amp_dtype, dist=run.d, true_flows=true_flows)
    except TrainingDiverged as e:
        log.record({"kind": "diverged", "step": run.step + 1, "loss": str(e)})
        raise TrainingDiverged(f"{e} (epoch {run.order.epoch_of(run.step)}); stopped without saving these "
                               f"weights; last good checkpoint: {rd.last_good(run.run_dir)}. Try a lower "
                               f"train.lr or train.grad_clip") from None


def _train_record(run: _Run, losses: dict[str, float], lr: float, seq_per_s: float, elapsed: float) -> dict[str, Any]:
    rec = {"kind": "train", "step": run.step, "epoch": run.order.epoch_of(run.step - 1), "lr": lr, **losses}
    rec["loss"] = rec.pop("total")
    rec["seq_per_s"] = seq_per_s
    rec["time"] = elapsed
    return rec


def _evaluate_and_save(run: _Run, log: RunLog, t_start: float, with_validation: bool = True) -> None:
    """Validation loss (all ranks; skipped with ``with_validation=False``, when a signal asks to stop
    quickly), then on rank 0 a step checkpoint, best/ when it improved, and pruning to
    ``checkpoint.keep_last``."""
    at, cfg = run.step, run.cfg
    if not _finite_params(run.model):
        raise TrainingDiverged(f"weights became NaN/Inf at step {at}; nothing saved, the last good "
                               f"checkpoint is {rd.last_good(run.run_dir)}")
    improved = False
    if cfg.checkpoint.validate and with_validation:
        v = validate(run.model, run.val_ds, cfg, run.weights, run.device, run.d, run.amp_dtype)
        if v:
            run.last_val = v["total"]
            improved = run.best_val is None or run.last_val < run.best_val
            log.record({"kind": "val", "step": at, "time": time.perf_counter() - t_start, **v})
            log.write(f"step {at}: validation loss {run.last_val:.6g}" + (" (best so far)" if improved else ""))
            if improved:
                run.best_val = run.last_val
    if run.d.is_main:
        spe = run.order.steps_per_epoch
        state = {"format": rd.STATE_FORMAT, "version": rd.STATE_VERSION, "step": at, "epoch": at // spe,
                 "position": at % spe, "optimizer": run.opt.state_dict(), "rng": rd.rng_state(),
                 "best_val": run.best_val, "seed": cfg.train.seed}
        path = rd.write_checkpoint(run.run_dir, rd.step_dir_name(at), run.model, state)
        run.written.append(path.name)
        if improved:
            rd.write_checkpoint(run.run_dir, rd.BEST, run.model, state)
        rd.prune(run.run_dir, cfg.checkpoint.keep_last)
    du.barrier(run.d)


def load_run_config(run_dir: Union[str, Path], overrides: Optional[list[str]] = None) -> RunConfig:
    """The resolved config of an existing run (plus ``section.key=value`` overrides).

    The model and the recipe of a run are fixed: its weights were trained for that model, and
    ``resolved.yaml`` already holds every value the recipe set, so a changed ``model.*`` key or
    ``train.recipe`` would only make the recorded config lie. Both are refused."""
    saved = rd.read_resolved(run_dir)
    cfg = resolve(apply_overrides(saved, overrides or []))
    if overrides:
        old = resolve(saved)
        if (cfg.model, cfg.model_preset, cfg.released_code) != (old.model, old.model_preset, old.released_code):
            raise StaeError(f"--resume {run_dir}: the model of a run cannot change (its weights were trained for "
                            f"the model in its {rd.RESOLVED_NAME}); drop the --set model.* overrides or start a new run")
        if cfg.train.recipe != old.train.recipe:
            raise StaeError(f"--resume {run_dir}: train.recipe cannot change ({rd.RESOLVED_NAME} already holds every "
                            f"value of the '{old.train.recipe}' recipe); --set the train.* keys to change instead")
    return cfg
