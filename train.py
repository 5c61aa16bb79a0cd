"""phykey command line: ``python train.py {fit,validate,test,predict,export} --config <yaml>``.

One LightningCLI for every model in the project: the YAML names the LightningModule and the
LightningDataModule by ``class_path`` (subclass mode), so PKG-Net, KGNet and the benchmark nets all
run through the same entry point. ``main(args)`` is what the tests call, with the same arguments a
user would type.

    python train.py fit --config configs/pkgnet/irs_case1.yaml
    python train.py fit --config configs/pkgnet/irs_case1.yaml --ckpt_path last      # resume
    python train.py test --config configs/pkgnet/irs_case1.yaml --ckpt_path <ckpt>
    python train.py export --config configs/pkgnet/irs_case1.yaml --ckpt_path <ckpt> --out model.pt2
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback


class PhykeyTrainer(Trainer):
    """Trainer with an ``export`` subcommand (its signature becomes the CLI flags)."""

    def export(self, model: LightningModule, datamodule: LightningDataModule | None = None,
               ckpt_path: str | None = None, out: str = "pkgnet.pt2", onnx: str | None = None) -> dict:
        """Export the PKG-Net of ``ckpt_path`` as a torch.export ``.pt2`` (and optionally ``.onnx``).

        Args:
            ckpt_path: checkpoint written by ``fit`` (required).
            out: output ``.pt2`` path; its folder must exist.
            onnx: optional ``.onnx`` path (needs the ``onnxscript`` package).
        """
        from models.checkpoints import check_record, load_checkpoint
        from models.export import check_export_path, export_pkgnet

        if not hasattr(model, "scenario") or not hasattr(model, "net"):
            raise ValueError(f"export supports PKG-Net modules; {type(model).__name__} has no scenario/net")
        if ckpt_path is None:
            raise ValueError("export needs --ckpt_path: the checkpoint written by fit")
        check_export_path(out, ".pt2")
        if onnx is not None:
            check_export_path(onnx, ".onnx")
        ckpt = load_checkpoint(ckpt_path)
        check_record(ckpt, model.checkpoint_record(), ckpt_path)
        model.load_state_dict(ckpt["state_dict"])
        meta = export_pkgnet(model.net, model.scenario, out, onnx,
                             extra_metadata={"checkpoint": str(ckpt_path), "epoch": ckpt.get("epoch")})
        shapes = ", ".join(f"{k} {['n', *v]}" for k, v in meta["outputs"].items())
        print(f"exported {out}" + (f" and {onnx}" if onnx else "") + f" ({meta['scenario']}: input x [n, "
              f"{len(meta['feature_names'])}] {meta['feature_names']}; outputs {shapes})")
        return meta


class LoggerSaveConfigCallback(SaveConfigCallback):
    """Also sends the parsed config to the experiment tracker (W&B run config)."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if trainer.logger is not None:
            cfg = self.parser.dump(self.config, skip_none=False, format="yaml")
            import yaml

            trainer.logger.log_hyperparams({"config": yaml.safe_load(cfg)})


class PhykeyCLI(LightningCLI):
    """LightningCLI with the project's defaults and the ``export`` subcommand."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {**LightningCLI.subcommands(), "export": {"model", "datamodule"}}

    def export(self, model: LightningModule, datamodule: LightningDataModule | None = None, **kwargs) -> dict:
        return self.trainer.export(model, datamodule, **kwargs)

    # -- checkpoints: the config is the record of a run; a checkpoint must match it -------------
    def _parse_ckpt_path(self) -> None:
        """Read ``--ckpt_path`` safely (``weights_only=True``) but, unlike LightningCLI, never let the
        checkpoint's stored hyper-parameters replace the config's model: a mismatch is refused in
        :meth:`after_instantiate_classes`, before anything runs."""
        self._ckpt = None
        sub = self.config.get("subcommand")
        if not sub:
            return
        ckpt_path = self.config[sub].get("ckpt_path")
        if ckpt_path and ckpt_path not in ("last", "best", "hpc", "registry"):
            from models.checkpoints import load_checkpoint

            self._ckpt = (ckpt_path, load_checkpoint(ckpt_path))

    def after_instantiate_classes(self) -> None:
        super().after_instantiate_classes()
        if getattr(self, "_ckpt", None) is not None and hasattr(self.model, "checkpoint_record"):
            from models.checkpoints import check_record

            path, ckpt = self._ckpt
            check_record(ckpt, self.model.checkpoint_record(), path)


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
        trainer_class=PhykeyTrainer,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_callback=LoggerSaveConfigCallback,
        save_config_kwargs={"overwrite": True},
        args=list(args) if args is not None else None,
        run=run,
    )


if __name__ == "__main__":
    main()
