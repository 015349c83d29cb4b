"""``stae plot``: training curves of one or several runs (like the paper's Fig. 6) from their
``metrics.jsonl``, as a PNG drawn by :func:`stae.viz.plot_curves`.

A run's ``metrics.jsonl`` (written by ``stae train``) holds one JSON object per line:
``{"kind": "train", "step": ..., "loss": ..., <loss terms>...}`` every few updates and
``{"kind": "val", "step": ..., "total": ..., <terms>...}`` at each validation. ``--metric loss``
reads ``loss`` from training records and ``total`` from validation records (the same
quantity, eq. 5's weighted sum); any other name is read as is (e.g. ``bce``, ``intensity``).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Optional, Sequence


from stae.commands import number
from stae.errors import StaeError
from stae.training.run_dir import metrics_file, read_metrics
from stae.viz import smooth

KINDS = ("train", "val")


def curve(records: Sequence[dict], metric: str, kind: str, x: str = "step") -> list[tuple[float, float]]:
    """(x, value) points of ``metric`` in the records of ``kind`` ("train" or "val").

    Records without a "kind" count as training records. Non-numeric values (e.g. a diverged
    step's "nan" string) are skipped.
    """
    key = "total" if (metric == "loss" and kind == "val") else metric
    pts = []
    for r in records:
        if r.get("kind", "train") != kind or key not in r or x not in r:
            continue
        v, xv = r[key], r[x]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not isinstance(xv, (int, float)):
            continue
        pts.append((float(xv), float(v)))
    return pts


def run_curves(runs: Sequence[str | Path], metric: str = "loss", kinds: Sequence[str] = ("train",),
               x: str = "step", window: int = 1, names: Optional[Sequence[str]] = None) -> dict[str, list]:
    """{label: [(x, value), ...]} for every run and kind that has the metric."""
    if names is not None and len(names) != len(runs):
        raise StaeError(f"--names: {len(names)} name(s) for {len(runs)} run(s)")
    curves: dict[str, list] = {}
    for i, run in enumerate(runs):
        records = read_metrics(run, strict=True)
        path = metrics_file(run)
        label = names[i] if names is not None else (path.parent.name if Path(run).is_dir() else path.stem)
        if label in curves or f"{label} (val)" in curves:
            label = f"{label} [{i + 1}]"
        found = False
        for kind in kinds:
            pts = curve(records, metric, kind, x)
            if pts:
                found = True
                curves[label if kind == "train" else f"{label} ({kind})"] = smooth(pts, window)
        if not found:
            have = sorted({k for r in records for k, v in r.items()
                           if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("step", "epoch")})
            raise StaeError(f"{path}: no {'/'.join(kinds)} records with {metric!r} against {x!r} "
                            f"(numbers logged: {', '.join(have) or 'none'})")
    return curves


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "plot",
        help="plot training curves of one or several runs (like the paper's Fig. 6)",
        description="Read each RUN_DIR's metrics.jsonl (written by stae train) and draw one curve per run "
                    "into a PNG.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (or metrics.jsonl files)")
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument("--metric", default="loss",
                   help="what to plot: loss (eq. 5's total; default) or a logged term such as bce, intensity, huber")
    p.add_argument("--kind", choices=("train", "val", "both"), default="train",
                   help="training records (default, as Fig. 6), validation records, or both")
    p.add_argument("--x", choices=("step", "epoch", "time"), default="step", help="horizontal axis (default step)")
    p.add_argument("--smooth", type=number(1, 10**6, integer=True), default=1, metavar="N", help="moving average over N logged points")
    p.add_argument("--logy", action="store_true", help="logarithmic vertical axis")
    p.add_argument("--names", default=None, help="comma-separated legend names, one per run")
    p.add_argument("--title", default=None)
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stae.viz import plot_curves

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise StaeError(f"--out {out}: must end in .png")
    if out.exists() and not args.force:
        raise StaeError(f"{out} already exists (use --force to overwrite)")
    if args.smooth < 1:
        raise StaeError(f"--smooth must be >= 1, got {args.smooth}")
    kinds = KINDS if args.kind == "both" else (args.kind,)
    names = [s.strip() for s in args.names.split(",")] if args.names else None
    curves = run_curves(args.runs, args.metric, kinds, args.x, args.smooth, names)
    ylabel = "loss (eq. 5)" if args.metric == "loss" else args.metric
    if args.logy and not any(v > 0 for pts in curves.values() for _, v in pts if math.isfinite(v)):
        raise StaeError(f"--logy: {args.metric} has no positive values to draw on a log axis")
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_curves(curves, out, title=args.title, xlabel={"time": "time (s)"}.get(args.x, args.x), ylabel=ylabel,
                logy=args.logy)
    print(f"wrote {out}: {', '.join(f'{k} ({len(v)} points)' for k, v in curves.items())}")
    return 0
