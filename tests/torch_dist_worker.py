"""Worker of tests/test_torch.py::test_distributed_sync_gloo_two_processes (spawned)."""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist

from calibkit.torch import BrierScore, CalibrationError, NegativeLogLikelihood


def data():
    rng = np.random.default_rng(11)
    z = torch.tensor(rng.normal(size=(1000, 4)) * 3.0)
    y = torch.tensor(rng.integers(0, 4, 1000))
    return y, torch.softmax(z, dim=1)


def run(rank, world, init_file, result_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    y, p = data()
    part = torch.tensor_split(torch.arange(len(y)), world)[rank]
    metrics = {
        "ece": CalibrationError(n_bins=10),
        "classwise": CalibrationError(n_bins=10, mode="classwise", norm="l2"),
        "brier": BrierScore(),
        "nll": NegativeLogLikelihood(),
    }
    for m in metrics.values():
        m.update(y[part], p[part])
    out = {name: m.compute().item() for name, m in metrics.items()}
    # compute() must leave the local state alone
    out["local_count"] = metrics["ece"].state_dict()["state"]["count"].sum().item()
    np.save(os.path.join(result_dir, f"rank{rank}.npy"), out)
    dist.destroy_process_group()
