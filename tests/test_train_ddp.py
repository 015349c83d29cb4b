"""Data-parallel training: 2 CPU processes (gloo) take the same step as one process on the
combined batch, and only rank 0 writes."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from stae.weights import load_model
from stae.training import resolve, train
from stae.training.batches import DataOrder
from stae.training.run_dir import read_metrics
from tests.helpers import tiny_raw, write_tiny_clips


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, raw: dict, run_dir: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)})
    train(resolve(raw), run_dir)


def test_two_processes_equal_one_process_on_combined_batch(tmp_path):
    data = write_tiny_clips(tmp_path / "clips.npy", n=16)
    # plain SGD and no clipping: one update is a deterministic function of the mean gradient
    raw = tiny_raw(data, train={"optimizer": "sgd", "lr": 0.5, "momentum": 0.0, "weight_decay": 0.0,
                                "schedule": "constant", "grad_clip": "none", "batch_size": 4, "max_steps": 2,
                                "loss_steps": "all", "loss_warmup": 1},
                   checkpoint={"every_steps": 1, "keep_last": 5})
    ddp_dir, one_dir = tmp_path / "ddp", tmp_path / "one"
    mp.spawn(_worker, args=(2, _free_port(), raw, str(ddp_dir)), nprocs=2, join=True)
    train(resolve(raw), one_dir)
    for step in ("step-0000001", "step-0000002"):
        a = load_model(ddp_dir / step).state_dict()
        b = load_model(one_dir / step).state_dict()
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=f"{step} {k}")
    # the update moved the weights (the comparison is not vacuous)
    moved = max(float((load_model(one_dir / "step-0000001").state_dict()[k] - v).abs().max())
                for k, v in load_model(one_dir / "step-0000002").state_dict().items())
    assert moved > 1e-4
    # only rank 0 logged: one record per step, and the same losses as the single process
    recs = read_metrics(ddp_dir)
    ones = read_metrics(one_dir)
    ddp_losses = [r["loss"] for r in recs if r["kind"] == "train"]
    one_losses = [r["loss"] for r in ones if r["kind"] == "train"]
    assert len(ddp_losses) == 2
    assert ddp_losses == pytest.approx(one_losses, rel=1e-5)
    assert sorted(p.name for p in ddp_dir.iterdir()) == sorted(p.name for p in one_dir.iterdir())


def test_data_order_is_a_function_of_seed_and_step():
    one = DataOrder(10, 8, 5, global_batch=4, seed=7, random_offset=True)
    assert one.steps_per_epoch == 2  # the incomplete last batch is dropped
    r0 = DataOrder(10, 8, 5, global_batch=4, seed=7, random_offset=True, rank=0, world_size=2)
    r1 = DataOrder(10, 8, 5, global_batch=4, seed=7, random_offset=True, rank=1, world_size=2)
    seen = []
    for step in range(6):
        idx, off = one.indices(step)
        i0, o0 = r0.indices(step)
        i1, o1 = r1.indices(step)
        assert list(idx) == list(i0) + list(i1) and list(off) == list(o0) + list(o1)  # disjoint shards
        assert ((0 <= off) & (off <= 3)).all()
        again = DataOrder(10, 8, 5, global_batch=4, seed=7, random_offset=True).indices(step)
        assert (again[0] == idx).all() and (again[1] == off).all()
        seen.append(list(idx))
    assert len(set(seen[0] + seen[1])) == 8  # no repeats within an epoch
    assert seen[0] + seen[1] != seen[2] + seen[3]  # a new order each epoch
    assert list(DataOrder(10, 8, 5, 4, seed=8, random_offset=True).indices(0)[0]) != seen[0]
