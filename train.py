"""phykey command line: ``python train.py {fit,validate,test,predict} --config <yaml>``.

One LightningCLI for every model in the project: the YAML names the LightningModule and the
LightningDataModule by ``class_path`` (subclass mode), so PKG-Net, KGNet and the benchmark nets all
run through the same entry point. ``main(args)`` is what the tests call, with the same arguments a
user would type.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI


class PhykeyCLI(LightningCLI):
    """LightningCLI with the project's defaults (config saved per run, overwrite allowed)."""


def main(args: Sequence[str] | None = None, run: bool = True) -> PhykeyCLI:
    """Build the CLI and (by default) run the chosen subcommand.

    ``args`` is the argument list without the program name, e.g.
    ``["fit", "--config", "configs/pkgnet/irs_case1.yaml"]``; ``None`` reads ``sys.argv``.
    """
    # W&B must never try the network unless the user asks for it explicitly.
    os.environ.setdefault("WANDB_MODE", "offline")
    return PhykeyCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        args=list(args) if args is not None else None,
        run=run,
    )


if __name__ == "__main__":
    main()
