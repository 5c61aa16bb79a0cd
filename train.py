"""phykey command line: ``python train.py {fit,validate,test,predict,export,agree} --config <yaml>``.

One LightningCLI for every model in the project: the YAML names the LightningModule and the
LightningDataModule by ``class_path`` (subclass mode), so PKG-Net, KGNet and the benchmark nets all
run through the same entry point. ``main(args)`` is what the tests call, with the same arguments a
user would type.

    python train.py fit --config configs/pkgnet/irs_case1.yaml
    python train.py fit --config configs/pkgnet/irs_case1.yaml --ckpt_path last      # resume
    python train.py test --config configs/pkgnet/irs_case1.yaml --ckpt_path <ckpt>
    python train.py export --config configs/pkgnet/irs_case1.yaml --ckpt_path <ckpt> --out model.pt2
    python train.py agree --config configs/pkgnet/irs_case1.yaml --ckpt_path <ckpt> --json keys.json   # keys

User errors (a bad flag, YAML key or value, a missing or foreign checkpoint, an existing output file)
print one line ``error: ...`` on stderr and exit with status 2 before anything is trained or written;
``--debug`` (or ``PHYKEY_DEBUG=1``) shows the traceback instead. See docs/errors_and_runs.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from agreement.command import agree as _agree


class PhykeyTrainer(Trainer):
    """Trainer with the ``export`` and ``agree`` subcommands (their signatures become the CLI flags)."""

    agree = _agree  # key agreement for the config's design (agreement/command.py)

    def export(self, model: LightningModule, datamodule: LightningDataModule | None = None,
               ckpt_path: str | None = None, out: str = "model.pt2", onnx: str | None = None,
               overwrite: bool = False) -> dict:
        """Export the net of ``ckpt_path`` (PKG-Net or KGNet) as a torch.export ``.pt2`` (and optionally ``.onnx``).

        Args:
            ckpt_path: checkpoint written by ``fit`` (required).
            out: output ``.pt2`` path; its folder must exist.
            onnx: optional ``.onnx`` path (needs the ``onnxscript`` package).
            overwrite: replace an existing ``out``/``onnx`` file (refused otherwise).
        """
        from models.checkpoints import check_record, load_checkpoint
        from models.export import check_export_path, export_module

        if ckpt_path is None:
            raise ValueError("export needs --ckpt_path: the checkpoint written by fit")
        check_export_path(out, ".pt2", overwrite=overwrite)
        if onnx is not None:
            check_export_path(onnx, ".onnx", overwrite=overwrite)
        ckpt = load_checkpoint(ckpt_path)
        _say_evaluation_settings(check_record(ckpt, model.checkpoint_record(), ckpt_path), ckpt_path)
        model.load_state_dict(ckpt["state_dict"])
        meta = export_module(model, ckpt, out, onnx,
                             extra_metadata={"checkpoint": str(ckpt_path), "epoch": ckpt.get("epoch")})
        print(f"exported {out}" + (f" and {onnx}" if onnx else "") + f": {meta['summary']}")
        return meta

    def predict(self, model: LightningModule | None = None, dataloaders=None,
                datamodule: LightningDataModule | None = None, return_predictions: bool | None = None,
                ckpt_path: str | None = None, weights_only: bool | None = None,
                out: str | None = None, overwrite: bool = False):
        """Predict with the checkpoint's net and save the outputs with ``torch.save`` to ``out``.

        Args:
            ckpt_path: checkpoint written by ``fit`` (required).
            out: file the predictions are written to (``.pt``, read with ``torch.load``); required.
            overwrite: replace an existing ``out`` file (refused otherwise).
        """
        if out is None:
            raise ValueError("predict needs --out: the .pt file the predictions are written to")
        target = _check_new_file("--out", out, overwrite)
        preds = super().predict(model, dataloaders, datamodule, True, ckpt_path, weights_only)
        import torch

        from models.export import atomic_write

        atomic_write(target, lambda tmp: torch.save(preds, tmp))
        print(f"predictions written to {target}")
        return preds


def _check_new_file(flag: str, path: str, overwrite: bool) -> Path:
    if not str(path).strip():
        raise ValueError(f"{flag} is empty; give a file name")
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{flag} {path!r} is a directory; give a file name")
    if not p.parent.is_dir():
        raise ValueError(f"{flag} folder {str(p.parent)!r} does not exist; create it first")
    if p.exists() and not overwrite:
        raise ValueError(f"{flag} {path!r} already exists; pass --overwrite true to replace it")
    return p


_SAID: set[tuple[str, str, str, str]] = set()


def _settings_text(key: str, value) -> str:
    from models.refine import describe_record

    return f"{key} {describe_record(value)}"


def _say_evaluation_settings(diff: dict, path) -> None:
    """One stderr line per model-component setting (the refinement) that differs between the checkpoint and the
    config (once per process: the CLI checks before instantiating and ``export`` again when called from Python)."""
    for key, (saved, here) in diff.items():
        said = (str(path), key, repr(saved), repr(here))
        if said in _SAID:
            continue
        _SAID.add(said)
        print(f"note: checkpoint {str(path)!r} was validated with {_settings_text(key, saved)}; evaluating with the "
              f"config's {_settings_text(key, here)} (it holds no weights: the trained net is the same)",
              file=sys.stderr)


class LoggerSaveConfigCallback(SaveConfigCallback):
    """Saves the parsed config beside the run's checkpoints and sends it to the experiment tracker (W&B run config).

    ``config.yaml`` is the training run's record, written by ``fit`` only: scripts rebuild the run's validation
    split from it (``experiments.multiuser_refine_sweep``). ``validate``/``test``/``predict`` write
    ``config_<stage>.yaml`` beside it, so evaluating with other draws or settings never rewrites the record.
    """

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        name = getattr(stage, "value", stage)  # Lightning passes a TrainerFn ("fit", "validate", "test", "predict")
        self.config_filename = "config.yaml" if name == "fit" else f"config_{name}.yaml"
        super().setup(trainer, pl_module, stage)

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if trainer.logger is not None:
            cfg = self.parser.dump(self.config, skip_none=False, format="yaml")
            import yaml

            trainer.logger.log_hyperparams({"config": yaml.safe_load(cfg)})


class PhykeyCLI(LightningCLI):
    """LightningCLI with the project's defaults and the ``export`` subcommand."""

    def __init__(self, *args, **kwargs):
        self._cleanup: list[str] = []
        try:
            super().__init__(*args, **kwargs)
        finally:
            for d in self._cleanup:
                shutil.rmtree(d, ignore_errors=True)

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {**LightningCLI.subcommands(), "export": {"model", "datamodule"}, "agree": {"model", "datamodule"}}

    def export(self, model: LightningModule, datamodule: LightningDataModule | None = None, **kwargs) -> dict:
        return self.trainer.export(model, datamodule, **kwargs)

    # -- checkpoints: the config is the record of a run; a checkpoint must match it -------------
    def _parse_ckpt_path(self) -> None:
        """Read ``--ckpt_path`` safely (``weights_only=True``) but, unlike LightningCLI, never let the
        checkpoint's stored hyper-parameters replace the config's model: a mismatch is refused in
        :meth:`after_instantiate_classes`, before anything runs. ``test``/``validate``/``predict``/
        ``export`` need a checkpoint (an untrained net is never evaluated)."""
        self._ckpt = None
        sub = self.config.get("subcommand")
        if not sub:
            return
        ckpt_path = self.config[sub].get("ckpt_path")
        if sub in ("test", "validate", "predict", "export") and not ckpt_path:
            raise ValueError(f"{sub} needs --ckpt_path (a checkpoint written by fit, e.g. "
                             f"runs/<family>/<config>/checkpoints/last.ckpt); without it the net is untrained")
        if ckpt_path and sub != "fit" and ckpt_path in ("last", "best", "hpc", "registry"):
            raise ValueError(f"{sub} needs --ckpt_path as a file path, got {ckpt_path!r} ('last' is for fit: resume)")
        if ckpt_path and ckpt_path in ("best", "hpc", "registry"):
            raise ValueError(f"--ckpt_path {ckpt_path!r} is not supported; give a checkpoint file or 'last' (resume)")
        if ckpt_path and ckpt_path != "last":
            from models.checkpoints import load_checkpoint

            self._ckpt = (ckpt_path, load_checkpoint(ckpt_path))

    def before_instantiate_classes(self) -> None:
        """Loggers' relative ``save_dir`` made absolute against the working directory: W&B's service
        process keeps the working directory of the first run in a process, and would otherwise write a
        later run's files there (runs in one Python process, e.g. notebooks and tests)."""
        super().before_instantiate_classes()
        sub = self.config.get("subcommand")
        cfg = self.config[sub] if sub else self.config
        if sub == "agree":  # the flags that need no model, before anything is built; key agreement logs no run
            from agreement.command import check_flags

            check_flags(cfg)
            cfg["trainer"]["logger"] = False
        loggers = cfg.get("trainer", {}).get("logger") if hasattr(cfg.get("trainer", {}), "get") else None
        for lg in loggers if isinstance(loggers, list) else [loggers]:
            init = getattr(lg, "init_args", None)
            save_dir = init.get("save_dir") if init is not None and hasattr(init, "get") else None
            if isinstance(save_dir, str) and save_dir and not os.path.isabs(save_dir):
                init["save_dir"] = os.path.abspath(save_dir)

    def after_instantiate_classes(self) -> None:
        super().after_instantiate_classes()
        sub = self.config.get("subcommand")
        if sub is None:
            return
        if self.trainer.fast_dev_run:
            self._isolate_fast_dev_run()
        ckpt_path = self.config[sub].get("ckpt_path")
        if sub == "fit" and ckpt_path == "last":
            last = self._last_checkpoint()
            from models.checkpoints import load_checkpoint

            self._ckpt = (str(last), load_checkpoint(last))
            self.config[sub]["ckpt_path"] = str(last)
            self.config_init[sub]["ckpt_path"] = str(last)
        if getattr(self, "_ckpt", None) is not None:
            if not hasattr(self.model, "checkpoint_record"):
                raise ValueError(f"{type(self.model).__name__} is not a phykey module; checkpoints are only "
                                 "loaded into phykey modules")
            from models.checkpoints import check_record

            path, ckpt = self._ckpt
            # model-component settings (the refinement) may differ in test/validate/predict/export, but a resumed
            # fit must validate as it did, or its best-checkpoint choice would mix two scores
            settings = check_record(ckpt, self.model.checkpoint_record(), path)
            if sub == "fit" and settings:
                key, (saved, here) = next(iter(settings.items()))
                raise ValueError(f"checkpoint {str(path)!r} was validated with {_settings_text(key, saved)}; fit "
                                 f"cannot resume with the config's {_settings_text(key, here)} (the best-checkpoint "
                                 "choice would mix two validation scores); another one is for test, validate, "
                                 "predict and export")
            _say_evaluation_settings(settings, path)
            if "weights_only" in self.config_init[sub]:  # Lightning reads it again: never unpickling either
                self.config_init[sub]["weights_only"] = True

    def _last_checkpoint(self) -> Path:
        cb = self.trainer.checkpoint_callback
        if cb is None or not cb.save_last:
            raise ValueError("--ckpt_path last needs a ModelCheckpoint callback with save_last: true in the config")
        if self.trainer.fast_dev_run:
            raise ValueError("--ckpt_path last cannot be combined with --trainer.fast_dev_run")
        dirpath = Path(cb.dirpath) if cb.dirpath else None
        if dirpath is None:
            raise ValueError("--ckpt_path last needs the ModelCheckpoint dirpath set in the config "
                             "(runs/<family>/<config>/checkpoints)")
        last = dirpath / f"{cb.CHECKPOINT_NAME_LAST}{cb.FILE_EXTENSION}"
        if not last.is_file():
            raise ValueError(f"--ckpt_path last: no checkpoint to resume, {str(last)!r} does not exist; "
                             "run fit without --ckpt_path first")
        return last

    def _isolate_fast_dev_run(self) -> None:
        """A smoke test writes its checkpoints into a throw-away folder, never the real run's."""
        from lightning.pytorch.callbacks import ModelCheckpoint

        tmp = tempfile.mkdtemp(prefix="phykey-fast-dev-run-")
        self._cleanup.append(tmp)
        for cb in self.trainer.callbacks:
            if isinstance(cb, ModelCheckpoint):
                cb.dirpath = tmp

    # -- the end of fit: what was trained, where it is, how good it is -------------------------
    def after_fit(self) -> None:
        trainer = self.trainer
        if not trainer.is_global_zero:
            return
        lines = ["", "fit finished" + (" (fast_dev_run: nothing kept)" if trainer.fast_dev_run else "")
                 + f" after epoch {trainer.current_epoch} ({trainer.global_step} steps)"]
        cb = trainer.checkpoint_callback
        if cb is not None and not trainer.fast_dev_run:
            if cb.best_model_path:
                score = cb.best_model_score
                lines.append(f"  best checkpoint: {cb.best_model_path}"
                             + (f" ({cb.monitor} = {float(score):.6g})" if score is not None else ""))
            if cb.last_model_path:
                lines.append(f"  last checkpoint: {cb.last_model_path}")
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
                   if k.startswith("val/") and k.count("/") == 1 and getattr(v, "numel", lambda: 1)() == 1
                   and not k.startswith(("val/skr_bits_", "val/gain_over_", "val/num_"))}
        if metrics:
            shown = ", ".join(f"{k} = {v:.6g}" for k, v in sorted(metrics.items()))
            lines.append(f"  final validation metrics: {shown}")
        from callbacks.baselines import BaselineCallback, format_table

        for c in trainer.callbacks:
            if isinstance(c, BaselineCallback) and c.last_tables.get("val"):
                lines.append(format_table(c.last_tables["val"], "val",
                                          learned_name=type(getattr(self.model, "net", self.model)).__name__))
        print("\n".join(lines))


class UsageError(Exception):
    """A command-line error found by the argument parser (message without usage text)."""


def _clean_parser_message(message: str) -> str:
    """jsonargparse's nested union report -> the failing key as typed (``--a.init_args.b``) and the reason."""
    raw = [line for line in str(message).splitlines() if line.strip()]
    if not any("Union subtypes" in line for line in raw):
        return " ".join(line.strip() for line in raw)
    items: list[list[str]] = []
    indent = None
    for line in raw:
        depth = len(line) - len(line.lstrip())
        if line.strip().startswith("- ") and (indent is None or depth <= indent):
            indent = depth
            items.append([line.strip()[2:]])
        elif indent is not None and depth > indent:
            items[-1].append(line.strip())
        else:
            indent = None
    errors = [" ".join(item) for item in items if not item[0].startswith("Expected a <class 'NoneType'>")]
    if not errors:
        return " ".join(line.strip() for line in raw if not line.strip().startswith(("Given value", "Subtypes")))
    out = []
    for err in errors:
        keys = re.findall(r'Parser key "([^"]+)"', raw[0] + " " + err)
        final = re.split(r"Parser key \"[^\"]+\": |Problem with given class_path '[^']+': ", err)[-1]
        final = _clean_parser_message(final) if "Union subtypes" in final else final
        out.append(f"--{'.init_args.'.join(keys)}: {final}" if keys else err)
    return "; ".join(out)


def _user_message(exc: BaseException) -> str:
    """The most specific message of a user error: a validation error wrapped by jsonargparse is unwrapped."""
    seen = exc
    while isinstance(seen.__cause__, user_errors()) and str(seen.__cause__) and \
            ("Union subtypes" in str(seen) or "Problem with given class_path" in str(seen)):
        seen = seen.__cause__
    message = _clean_parser_message(str(seen)) if str(seen) else type(seen).__name__
    # jsonargparse refuses nan/inf for float fields as "Expected a <class 'float'>. Got value: nan", which reads
    # like a contradiction (nan is a float); say what is meant
    return re.sub(r"Expected a <class 'float'>\. Got value: ([-+]?(?:nan|inf))",
                  r"got \1: numbers here must be finite", message)


def _one_line(message: str) -> str:
    text = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
    text = text.replace("error: ", "")
    return text if len(text) <= 1500 else text[:1500] + " ..."


@contextlib.contextmanager
def _parser_errors_raise() -> Iterator[None]:
    """jsonargparse prints usage and exits on a bad flag or YAML key; make it raise instead."""
    import jsonargparse

    original = jsonargparse.ArgumentParser.error

    def error(self, message, ex=None):
        if not self.exit_on_error:
            return original(self, message, ex)
        raise UsageError(message) from ex

    jsonargparse.ArgumentParser.error = error
    try:
        yield
    finally:
        jsonargparse.ArgumentParser.error = original


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not any(t in msg for t in ("Tip:", "litlogger", "litmodels", "LitLogger", "Seed set to"))


def _quiet_third_parties() -> None:
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "lightning.fabric.utilities.seed",
                 "lightning.pytorch", "lightning.fabric"):
        lg = logging.getLogger(name)
        if not any(isinstance(f, _DropTips) for f in lg.filters):
            lg.addFilter(_DropTips())
    os.environ.setdefault("WANDB_SILENT", "true")


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the user's input is wrong" (one line, exit 2)."""
    import jsonargparse
    import yaml
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    return (UsageError, ValueError, OSError, jsonargparse.ArgumentError, yaml.YAMLError,
            MisconfigurationException)


def fail(message: str) -> None:
    """Print ``error: <message>`` on one line to stderr and exit with status 2."""
    print(f"error: {_one_line(message)}", file=sys.stderr)
    raise SystemExit(2)


def main(args: Sequence[str] | None = None, run: bool = True) -> PhykeyCLI:
    """Build the CLI and (by default) run the chosen subcommand.

    ``args`` is the argument list without the program name, e.g.
    ``["fit", "--config", "configs/pkgnet/irs_case1.yaml"]``; ``None`` reads ``sys.argv``.
    A user error prints one ``error:`` line and raises ``SystemExit(2)``; ``--debug`` or
    ``PHYKEY_DEBUG=1`` re-raises it with its traceback.
    """
    argv = list(sys.argv[1:] if args is None else args)
    debug = "--debug" in argv or os.environ.get("PHYKEY_DEBUG", "").lower() in ("1", "true", "yes")
    argv = [a for a in argv if a != "--debug"]
    # W&B must never try the network unless the user asks for it explicitly.
    os.environ.setdefault("WANDB_MODE", "offline")
    _quiet_third_parties()
    try:
        with _parser_errors_raise(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
            return PhykeyCLI(
                LightningModule,
                LightningDataModule,
                trainer_class=PhykeyTrainer,
                subclass_mode_model=True,
                subclass_mode_data=True,
                save_config_callback=LoggerSaveConfigCallback,
                save_config_kwargs={"overwrite": True},
                args=argv,
                run=run,
            )
    except user_errors() as e:
        if debug:
            raise
        message = _user_message(e)
        if "Problems parsing config" in message:
            configs = [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
            configs += [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config"]
            message = f"--config {', '.join(configs)}: {message}" if configs else message
        fail(message)


if __name__ == "__main__":
    main()
