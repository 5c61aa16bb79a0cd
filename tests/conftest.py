"""Shared fixtures: run the CLI (``train.main``) in a throw-away folder with W&B offline."""

from __future__ import annotations

import pytest


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    """``train`` module with cwd, HOME (W&B debug logs) and runs/ inside ``tmp_path``; W&B offline."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    import train

    yield train
    try:  # one W&B run per test: close it so the next test starts clean
        import wandb

        wandb.finish()
    except Exception:  # noqa: BLE001 - best effort cleanup
        pass


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small matrices: one intra-op thread avoids OpenMP spin-waiting on the shared 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
