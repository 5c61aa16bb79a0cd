"""Plain-type hyper-parameters for phykey's LightningModules.

Under LightningCLI a module's injected objects (net, scenario, loss) arrive as the YAML's
``class_path``/``init_args`` dictionaries, and LightningCLI also records ``_class_path`` and an
instantiator, so ``Module.load_from_checkpoint(path)`` can rebuild the module from the checkpoint
alone. Only plain types are kept: checkpoints are read with ``torch.load(weights_only=True)``, which
refuses arbitrary objects (and never runs code from a file).
"""

from __future__ import annotations

import inspect
import warnings

from lightning.pytorch import LightningModule

_PLAIN = (int, float, str, bool, type(None))


def is_plain(value: object) -> bool:
    """True for ints, floats, strings, bools, None and lists/tuples/str-keyed dicts of them."""
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, list | tuple):
        return all(is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_plain(v) for k, v in value.items())
    return False


def save_plain_hyperparameters(module: LightningModule) -> None:
    """``save_hyperparameters()`` of the caller's ``__init__`` arguments, keeping plain types only.

    Called from ``__init__`` (frame 1 up is the module's constructor)."""
    with warnings.catch_warnings():  # "x is an instance of nn.Module ..." when built in Python: dropped below
        warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`.*")
        module.save_hyperparameters(frame=inspect.currentframe().f_back)
    dropped = [k for k, v in module.hparams.items() if not k.startswith("_") and not is_plain(v)]
    module.remove_ignored_hparams(dropped)
