"""Train a model for a wall-clock budget on float Moving MNIST and record its test MSE against
training minutes, so that stae and a peer can be compared side by side (docs/benchmarks.md).

    # the peer (benchmarks/openstl_convlstm.py: OpenSTL's Moving MNIST ConvLSTM), 60 minutes, 1 thread
    python benchmarks/equal_wallclock.py peer --minutes 60 --threads 1 --eval-every 10 \
        --out benchmarks/results/side_by_side_peer.json
    # stae from a config, on the same data and test set (runs `stae train` / `stae evaluate` in
    # segments of --eval-every minutes; extra --set overrides pass through)
    python benchmarks/equal_wallclock.py stae --config configs/fast.yaml --minutes 60 --threads 1 --eval-every 10 \
        --out benchmarks/results/side_by_side_stae.json
    # several curves on one PNG
    python benchmarks/equal_wallclock.py plot benchmarks/results/side_by_side_*.json --out curves.png

Data: stae.data.MovingMNIST, float (not binarised), 64x64, 20 frames (10 in, 10 out), two digits.
Training sequences: 10,000 of seed 0 from the training digits (OpenSTL's count; stae's default
training set). Test set: the first ``--test-sequences`` (default 200) sequences of stae's test
set (seed 2, test digits), the same clips as ``stae evaluate --data moving-mnist --limit N``.
Test MSE is OpenSTL's: squared error of the unclipped 10-frame rollout summed over a frame's
pixels, averaged over frames and clips (stae.metrics.mse_per_frame); the final record adds
OpenSTL's MAE / SSIM / PSNR and stae's Gaussian SSIM (docs/metrics.md).

The clock counts training only (data, forward, backward, update); evaluations pause it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))

import perf_common as pc  # noqa: E402  (first: sets OMP_WAIT_POLICY before torch loads)
import numpy as np  # noqa: E402
import torch  # noqa: E402

from openstl_convlstm import (OPENSTL_PUBLISHED_PARAMS, OPENSTL_UNUSED_PER_LAYER, PeerConfig,  # noqa: E402
                              PeerConvLSTM, one_cycle, parameter_count, sampling_eta)
from stae import metrics as M  # noqa: E402
from stae.data.moving_mnist import MovingMNIST  # noqa: E402
from stae.errors import StaeError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRAIN = {"num_sequences": 10_000, "seed": 0, "split": "train"}
TEST_SEED, TEST_SPLIT = 2, "test"
CONTEXT, HORIZON = 10, 10


def clips(ds: MovingMNIST, indices: Sequence[int]) -> torch.Tensor:
    """Float clips (B, 20, 1, 64, 64) in [0, 1] of ``ds``'s sequences ``indices``."""
    frames = ds.generate(list(indices))["frames"]
    return torch.from_numpy(frames.astype(np.float32) / 255.0).unsqueeze(2)


def load_test_set(n: int) -> torch.Tensor:
    if n < 1:
        raise StaeError(f"--test-sequences must be >= 1, got {n}")
    return clips(MovingMNIST(n, seed=TEST_SEED, split=TEST_SPLIT), range(n))


def score(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """OpenSTL's four metrics and stae's Gaussian SSIM of an unclipped rollout (B, K, C, H, W)."""
    return {"mse": M.mse_per_frame(pred, target), "mae": M.mae_per_frame(pred, target),
            "ssim_openstl": M.openstl_ssim(pred, target), "psnr_openstl": M.openstl_psnr(pred, target),
            "ssim_gaussian": M.ssim(pred.clamp(0, 1), target)}


@torch.no_grad()
def evaluate_peer(model: PeerConvLSTM, test: torch.Tensor, batch: int = 16, full: bool = False) -> dict[str, float]:
    """Test MSE (and, with ``full``, every :func:`score` metric) of the 10 -> 10 rollout."""
    sums: dict[str, float] = {}
    for s in range(0, len(test), batch):
        clip = test[s:s + batch]
        pred = model.rollout(clip[:, :CONTEXT], HORIZON)
        target = clip[:, CONTEXT:CONTEXT + HORIZON]
        vals = score(pred, target) if full else {"mse": M.mse_per_frame(pred, target)}
        for k, v in vals.items():  # every batch has the same frames per clip: weight by clips
            sums[k] = sums.get(k, 0.0) + v * len(clip)
    return {k: v / len(test) for k, v in sums.items()}


def references(test: torch.Tensor) -> dict[str, dict[str, float]]:
    """The same metrics for two trivial predictions: repeating the last context frame, and a
    blank (all-zero) frame, whose MSE is the digits' own energy."""
    target = test[:, CONTEXT:CONTEXT + HORIZON]
    return {"copy_last": score(test[:, CONTEXT - 1:CONTEXT].expand_as(target), target),
            "blank": score(torch.zeros_like(target), target)}


def _check_budget(minutes: float, eval_every: float, threads: int) -> None:
    if not minutes > 0 or not eval_every > 0:
        raise StaeError(f"--minutes and --eval-every must be > 0, got {minutes} and {eval_every}")
    if threads < 1:
        raise StaeError(f"--threads must be >= 1, got {threads}")


def train_peer(minutes: float, threads: int, eval_every: float, test_sequences: int = 200, seed: int = 0,
               config: PeerConfig = PeerConfig()) -> dict[str, Any]:
    """Train the peer for ``minutes`` of training time; evaluate every ``eval_every`` minutes."""
    _check_budget(minutes, eval_every, threads)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = PeerConvLSTM(config)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    data, test = MovingMNIST(**TRAIN), load_test_set(test_sequences)
    order = np.random.default_rng(seed)
    perm, pos = order.permutation(len(data)), 0
    budget, spent, it, losses = minutes * 60.0, 0.0, 0, []
    curve = [{"minutes": 0.0, "iterations": 0, "test_mse": evaluate_peer(model, test)["mse"]}]
    next_eval = eval_every * 60.0
    while spent < budget:
        t0 = time.perf_counter()
        if pos + config.batch_size > len(perm):
            perm, pos = order.permutation(len(data)), 0
        clip = clips(data, perm[pos:pos + config.batch_size])
        pos += config.batch_size
        lr, beta1 = one_cycle(spent / budget, config.lr)
        for g in opt.param_groups:
            g["lr"], g["betas"] = lr, (beta1, g["betas"][1])
        eta = sampling_eta(it, config)
        loss = torch.nn.functional.mse_loss(model(clip, eta=eta, generator=gen), clip[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        spent += time.perf_counter() - t0
        it += 1
        losses.append(float(loss.detach()))
        if spent >= next_eval or spent >= budget:
            t_eval = time.perf_counter()
            ev = evaluate_peer(model, test, full=spent >= budget)  # the last one: every metric
            curve.append({"minutes": round(spent / 60, 3), "iterations": it, "sequences": it * config.batch_size,
                          "lr": lr, "eta": eta, "train_loss": float(np.mean(losses)), "test_mse": ev["mse"],
                          "eval_seconds": round(time.perf_counter() - t_eval, 1)})
            losses = []
            while next_eval <= spent:
                next_eval += eval_every * 60.0
    n = parameter_count(model)
    return {"model": "openstl_convlstm (benchmarks/openstl_convlstm.py)", "config": vars(config),
            "params": n, "params_with_openstl_unused_layers": n + config.layers * OPENSTL_UNUSED_PER_LAYER,
            "params_openstl_published": OPENSTL_PUBLISHED_PARAMS, "iterations": it,
            "training_minutes": round(spent / 60, 3), "curve": curve,
            "final": ev, **references(test)}


STAE_SETS = ["data.source=moving_mnist", "data.binary=false", "data.size=64", "data.num_frames=20",
             f"data.train_sequences={TRAIN['num_sequences']}", f"data.seed={TRAIN['seed']}",
             "checkpoint.validate=false", "checkpoint.keep_last=1", "log.every_steps=1", "log.tensorboard=false",
             "log.progress=false", "log.image_every=0"]


def _stae(argv: list[str]) -> None:
    from stae.cli import main
    if main(argv) != 0:
        raise StaeError(f"stae {' '.join(argv)} failed (see the message above)")


def stae_rollout_metrics(run: Path, test_sequences: int, full: bool = False) -> dict[str, float]:
    """`stae evaluate RUN --mode rollout` on the first N test clips -> the model's metrics."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "eval.json"
        _stae(["evaluate", str(run), "--mode", "rollout", "--data", "moving-mnist", "--limit", str(test_sequences),
               "--no-dis", "--batch-size", "16", "--device", "cpu", "--out", str(out)])
        res = json.loads(out.read_text())["results"]["model"]
    if not full:
        return {"mse": res["mse_per_frame"]}
    return {"mse": res["mse_per_frame"], "mae": res["mae_per_frame"], "ssim_openstl": res["ssim_openstl"],
            "psnr_openstl": res["psnr_openstl"], "ssim_gaussian": res["ssim"]}


def train_stae(config: Path, run: Path, minutes: float, threads: int, eval_every: float, test_sequences: int = 200,
               overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Train stae from ``config`` into ``run`` in segments of ``eval_every`` minutes (``stae
    train`` then ``stae train --resume``), evaluating after each; minutes are the loop's own."""
    _check_budget(minutes, eval_every, threads)
    if not Path(config).is_file():
        raise StaeError(f"--config {config}: no such file")
    if run.exists():
        raise StaeError(f"--run-dir {run} exists; give a new directory")
    torch.set_num_threads(threads)
    sets = STAE_SETS + [f"train.threads={threads}", *overrides]
    curve: list[dict[str, Any]] = []
    done, result = 0.0, {}
    while done < minutes:
        seg = [f"train.max_minutes={min(eval_every, max(minutes - done, 1e-3)):.4f}"]  # 0 would mean no limit
        argv = (["train", str(config), "--out", str(run)] + [a for s in sets for a in ("--set", s)] if not curve else
                ["train", "--resume", str(run)])
        _stae(argv + [a for s in seg for a in ("--set", s)])
        result = json.loads((run / "result.json").read_text())
        done = float(result["minutes"])
        curve.append({"minutes": done, "iterations": result["updates"], "sequences": result["sequences_seen"],
                      "test_mse": stae_rollout_metrics(run, test_sequences)["mse"]})
        if result.get("stopped") == "done":  # the config's own step budget ran out first
            break
    try:  # the layout is moving stae.checkpoint's loading to stae.weights
        from stae.weights import load_model
    except ImportError:
        from stae.checkpoint import load_model
    return {"model": f"stae ({config})", "config_file": str(config), "overrides": list(sets), "run_dir": str(run),
            "params": parameter_count(load_model(str(run))), "iterations": result.get("updates"),
            "training_minutes": done, "curve": curve, "final": stae_rollout_metrics(run, test_sequences, full=True),
            **references(load_test_set(test_sequences))}


def plot_curves(paths: Sequence[Path], out: Path, log_y: bool = False) -> Path:
    """Every result's curve (training minutes -> test MSE) on one PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not paths:
        raise StaeError("plot: give at least one result JSON")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    refs: dict[str, float] = {}
    for p in paths:
        if not Path(p).is_file():
            raise StaeError(f"plot: {p}: no such file")
        r = json.loads(Path(p).read_text())
        if "curve" not in r:
            raise StaeError(f"plot: {p} is not a side_by_side result (no 'curve')")
        xs, ys = [c["minutes"] for c in r["curve"]], [c["test_mse"] for c in r["curve"]]
        ax.plot(xs, ys, marker="o", label=r.get("label", Path(p).stem))
        for name in ("copy_last", "blank"):  # the same test set in every run: draw them once
            if name in r:
                refs.setdefault(name, r[name]["mse"])
    for (name, mse), style in zip(refs.items(), ("--", ":")):
        ax.axhline(mse, color="grey", linestyle=style, linewidth=1,
                   label={"copy_last": "copy the last frame", "blank": "blank frame"}[name])
    ax.set_xlabel("training minutes (wall clock, evaluation excluded)")
    ax.set_ylabel("test MSE per frame (OpenSTL; 10 -> 10 rollout)")
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    for name in ("peer", "stae"):
        s = sub.add_parser(name, help=f"train {'the OpenSTL-config ConvLSTM' if name == 'peer' else 'stae from a config'}")
        s.add_argument("--minutes", type=float, required=True, help="training budget (wall clock, evaluation excluded)")
        s.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
        s.add_argument("--eval-every", type=float, default=10.0, help="minutes of training between test evaluations")
        s.add_argument("--test-sequences", type=int, default=200, help="first N clips of the test set (default 200)")
        s.add_argument("--label", default=None, help="legend label (default: the model's name)")
        s.add_argument("--smoke", action="store_true", help="mark the result as a smoke run (pipeline check only)")
        s.add_argument("--out", required=True, help="result JSON")
    sub.choices["peer"].add_argument("--seed", type=int, default=0)
    st = sub.choices["stae"]
    st.add_argument("--config", type=Path, required=True, help="stae training config (YAML/TOML)")
    st.add_argument("--run-dir", type=Path, default=None, help="stae run directory (default: a new temporary one)")
    st.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    pl = sub.add_parser("plot", help="curves of several results on one PNG")
    pl.add_argument("results", nargs="+", type=Path)
    pl.add_argument("--out", type=Path, required=True)
    pl.add_argument("--log-y", action="store_true")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.what == "plot":
            print(f"wrote {plot_curves(args.results, args.out, args.log_y)}")
            return 0
        started, load0 = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), [round(x, 2) for x in os.getloadavg()]
        if args.what == "peer":
            res = train_peer(args.minutes, args.threads, args.eval_every, args.test_sequences, args.seed)
        else:
            run = args.run_dir or Path(tempfile.mkdtemp(prefix="side_by_side_")) / "run"
            res = train_stae(args.config, run, args.minutes, args.threads, args.eval_every, args.test_sequences,
                             args.overrides)
        label = args.label or ("OpenSTL-config ConvLSTM" if args.what == "peer" else f"stae {args.config.stem}")
        payload = {"kind": "side_by_side", "smoke": bool(args.smoke),
                   "label": label + (" (SMOKE RUN)" if args.smoke else ""), "started_utc": started, "loadavg_start": load0,
                   "budget_minutes": args.minutes, "threads": args.threads, "eval_every_minutes": args.eval_every,
                   "data": {"train": TRAIN, "test": {"sequences": args.test_sequences, "seed": TEST_SEED,
                                                     "split": TEST_SPLIT}, "frames": "10 in -> 10 out, float, 64x64"},
                   **res}
        path = pc.write_json("side_by_side", payload, args.out)
    except StaeError as e:
        print(f"side_by_side: error: {e}", file=sys.stderr)
        return 2
    c = payload["curve"][-1]
    print(f"{payload['label']}: {payload['iterations']} iterations in {payload['training_minutes']:.2f} training min, "
          f"test MSE {c['test_mse']:.2f} (copy-last {payload['copy_last']['mse']:.2f}); wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
