"""Safe checkpoint reading and the record that ties a checkpoint to the model it was trained as.

Every phykey LightningModule stores ``checkpoint["phykey"] = module.checkpoint_record()`` (plain
types: model family, net class and shape, the scenario's description for PKG-Net). A checkpoint is
accepted only by a module whose record is equal, so a KGNet checkpoint is never loaded into an FNN
config, nor an IRS Case 1 net into a Case 2 config. The record's ``settings`` entry is the exception: settings of
model components that change no trained weight (PKG-Net's refinement, ``models.refine``) may differ, and
:func:`check_record` returns the differences so the caller can say which are used. Files are read with
``weights_only=True``: no code in a checkpoint is ever run.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

RECORD_KEY = "phykey"
#: entry of a record with the settings of model components that change no trained weight (``{"refinement": ...}``)
SETTINGS_KEY = "settings"


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``; ValueError naming the file otherwise."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"checkpoint {str(p)!r} does not exist")
    if not p.is_file():
        raise ValueError(f"checkpoint {str(p)!r} is not a file")
    if p.stat().st_size == 0:
        raise ValueError(f"checkpoint {str(p)!r} is empty")
    if not zipfile.is_zipfile(p):
        raise ValueError(f"checkpoint {str(p)!r} is not a readable PyTorch checkpoint (not the zip archive "
                         "torch.save writes: truncated or another kind of file)")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        what = f": it refers to {found.group(1).rstrip('.,')}" if found else ""
        raise ValueError(f"checkpoint {str(p)!r} holds objects phykey does not load (only tensors and plain "
                         f"types are read, nothing is unpickled){what}") from None
    except (EOFError, OSError, RuntimeError, zipfile.BadZipFile, ValueError, KeyError) as e:
        raise ValueError(f"checkpoint {str(p)!r} is not a readable PyTorch checkpoint (truncated or another "
                         f"kind of file): {type(e).__name__}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ValueError(f"checkpoint {str(p)!r} is not a Lightning checkpoint (no state_dict)")
    return ckpt


def _summary(diff: dict[str, tuple[Any, Any]]) -> str:
    """``{key: (checkpoint, config)}`` with settings first and long values (feature-name lists) cut short, so the
    keys that decide stay readable."""
    def short(v: Any) -> str:
        r = repr(v)
        return r if len(r) <= 48 else r[:45] + "..."

    keys = sorted(diff, key=lambda k: (isinstance(diff[k][0], list | dict) or isinstance(diff[k][1], list | dict), k))
    return "{" + ", ".join(f"{k!r}: ({short(diff[k][0])}, {short(diff[k][1])})" for k in keys) + "}"


def read_record(checkpoint: dict[str, Any]) -> Any:
    """The checkpoint's phykey record. A PKG-Net record written before the multi-user refinement became a model
    component holds its settings in the scenario description (``refine_steps``, ``refine_lr``; absent when it was
    off): they are read as the record's refinement setting, so such a checkpoint loads into today's config."""
    record = checkpoint.get(RECORD_KEY)
    scenario = record.get("scenario") if isinstance(record, dict) else None
    if isinstance(scenario, dict) and str(scenario.get("scenario", "")).startswith("multiuser_003") \
            and SETTINGS_KEY not in record:
        scenario = dict(scenario)
        steps, lr = scenario.pop("refine_steps", 0), scenario.pop("refine_lr", 0.03)
        refinement = ({"class_path": "models.refine.ProjectedAscentRefinement", "init_args": {"steps": steps, "lr": lr}}
                      if steps else None)
        record = {**record, "scenario": scenario, SETTINGS_KEY: {"refinement": refinement}}
    return record


def check_record(checkpoint: dict[str, Any], here: dict[str, Any],
                 path: str | os.PathLike | None = None) -> dict[str, tuple[Any, Any]]:
    """Raise ValueError unless the checkpoint's phykey record equals ``here`` (the config's model).

    The records' ``settings`` (:data:`SETTINGS_KEY`: model components that change no trained weight, e.g. the
    refinement) may differ; the differences are returned as ``{key: (checkpoint value, config value)}`` so the
    caller can say which setting the evaluation uses (or refuse them, as a resumed ``fit`` does).
    """
    where = f"checkpoint {str(path)!r}" if path is not None else "checkpoint"
    saved = read_record(checkpoint)
    if not isinstance(saved, dict) or "family" not in saved:
        raise ValueError(f"{where} has no phykey model record: it was not written by a phykey module")
    saved_settings, here_settings = saved.get(SETTINGS_KEY) or {}, here.get(SETTINGS_KEY) or {}
    saved = {k: v for k, v in saved.items() if k != SETTINGS_KEY}
    here = {k: v for k, v in here.items() if k != SETTINGS_KEY}
    if saved.get("family") != here.get("family") or saved.get("net") != here.get("net"):
        raise ValueError(f"{where} holds a {saved.get('family')} model ({saved.get('net')}); the config builds a "
                         f"{here.get('family')} model ({here.get('net')})")
    if saved != here:
        if saved.get("scenario") != here.get("scenario"):
            s, h = saved.get("scenario") or {}, here.get("scenario") or {}
            if s.get("scenario") != h.get("scenario"):
                raise ValueError(f"{where} was trained on another scenario: it holds a {s.get('scenario')!r} model, "
                                 f"the config builds {h.get('scenario')!r}")
            diff = {k: (s.get(k), h.get(k)) for k in sorted(set(s) | set(h)) if s.get(k) != h.get(k)}
            raise ValueError(f"{where} was trained on another scenario; (checkpoint, config) differ in "
                             f"{_summary(diff)}")
        diff = {k: (saved.get(k), here.get(k)) for k in sorted(set(saved) | set(here)) if saved.get(k) != here.get(k)}
        raise ValueError(f"{where} was trained with another net; (checkpoint, config) differ in {_summary(diff)}")
    return {k: (saved_settings.get(k), here_settings.get(k)) for k in sorted(set(saved_settings) | set(here_settings))
            if saved_settings.get(k) != here_settings.get(k)}
