"""BaselineCallback: analytic baselines on the same validation/test draws as the learned design.

It observes only: it never touches the loss or the model's parameters. Everything it reports comes
from the scenario contract (``physics/scenario.py``), so any scenario is served unchanged:

* the baseline names are whatever ``scenario.baselines()`` returns;
* the per-instance optimum is ``scenario.optimum(batch, generator, **optimum_options)``, the options
  passed through as they stand in the YAML;
* a scenario whose ``skr`` is ``[n, K]`` (one rate per user) is reported per user and summed
  (the sum is the objective, :func:`physics.scenario.total_skr`);
* ``scenario.subsets()`` masks give the same report per named subset (``{stage}/<subset>/...``).

Validation/test draws are fixed and carry their global index (``draw_index``, added by
``ScenarioDataModule``), so baselines are computed once per batch and cached, the optimum runs on the
draws with global index below ``optimum_draws``, and every seed derives from draw indices: a DDP run
reports exactly what a single process does. Means are sums and counts all-reduced across ranks (no
average of per-rank means), with the set of keys broadcast from rank 0 so every rank joins the same
collectives even when its share of a subset is empty.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

from physics.scenario import INDEX_KEY, STREAMS, generator_for, strip_index

LEARNED = "learned"


class BaselineCallback(pl.Callback):
    """Logs, per stage (``val``/``test``) and per subset prefix:

    ``skr_bits_<name>`` and ``gain_over_<name>`` (learned minus baseline, bits) for every baseline;
    ``skr_bits_optimum``, ``skr_bits_on_optimum_draws`` and ``fraction_of_optimum`` on the optimum
    draws; ``num_draws``; for multi-user scenarios ``skr_bits_user<k>`` (learned, per user) and
    ``skr_bits_<name>_user<k>``. ``skr_bits`` itself is logged by the LightningModule.

    Args:
        optimum_draws: validation draws (lowest global indices) that get the per-instance optimum.
        optimum_every_n_epochs: run the optimum on validation every n epochs (it is cached after).
        optimum_options: the scenario's solver settings, passed to ``scenario.optimum`` unchanged
            (e.g. ``{steps: 100, restarts: 4}`` for the IRS scenarios).
        test_optimum_draws: test draws that get the optimum.
        seed: seed of the baselines' and optimum's random streams.
        print_table: print the test table (and keep ``last_tables`` for the end-of-fit summary).
    """

    def __init__(self, optimum_draws: int = 64, optimum_every_n_epochs: int = 5,
                 optimum_options: dict[str, Any] | None = None, test_optimum_draws: int = 1000,
                 seed: int = 0, print_table: bool = True):
        super().__init__()
        for name, v in (("optimum_draws", optimum_draws), ("test_optimum_draws", test_optimum_draws)):
            if isinstance(v, bool) or int(v) != v or v < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
        if isinstance(optimum_every_n_epochs, bool) or int(optimum_every_n_epochs) != optimum_every_n_epochs \
                or optimum_every_n_epochs < 1:
            raise ValueError(f"optimum_every_n_epochs must be an integer >= 1, got {optimum_every_n_epochs!r}")
        if optimum_options is not None and not isinstance(optimum_options, dict):
            raise ValueError(f"optimum_options must be a mapping of solver settings, got {optimum_options!r}")
        self.optimum_draws = int(optimum_draws)
        self.optimum_every_n_epochs = int(optimum_every_n_epochs)
        self.optimum_options = dict(optimum_options or {})
        self.test_optimum_draws = int(test_optimum_draws)
        self.seed = int(seed)
        self.print_table = bool(print_table)
        self._cache: dict[tuple[str, int], dict[str, torch.Tensor]] = {}
        self._sums: dict[str, torch.Tensor] = {}
        self.last_tables: dict[str, dict[str, float]] = {}

    @property
    def last_table(self) -> dict[str, float]:
        """The most recent table (test if run, else validation)."""
        return self.last_tables.get("test") or self.last_tables.get("val") or {}

    # -- per batch ------------------------------------------------------------------------
    def _add(self, key: str, values: torch.Tensor) -> None:
        """Accumulate sum and count of ``values`` ([m] or [m, K]) under ``key``."""
        v = values.detach().to("cpu", torch.float64)
        row = torch.cat([v.sum(0).reshape(-1), torch.tensor([float(v.shape[0])], dtype=torch.float64)])
        self._sums[key] = self._sums[key] + row if key in self._sums else row

    def _baseline_skr(self, scenario, batch, stage: str, with_optimum: bool) -> dict[str, torch.Tensor]:
        index = batch[INDEX_KEY].cpu()
        first = int(index[0])
        cpu_batch = {k: v.detach().to("cpu", torch.float64) for k, v in strip_index(batch).items()}
        key = (stage, first)
        if key not in self._cache:
            designs = scenario.baselines(cpu_batch, generator_for(self.seed, STREAMS["baselines"], first))
            self._cache[key] = {name: scenario.skr(cpu_batch, d).detach() for name, d in designs.items()}
        out = dict(self._cache[key])
        limit = self.test_optimum_draws if stage == "test" else self.optimum_draws
        take = index < limit
        if with_optimum and bool(take.any()):
            okey = (stage + "/optimum", first)
            if okey not in self._cache:
                sub = {k: v[take] for k, v in cpu_batch.items()}
                design = scenario.optimum(sub, generator_for(self.seed, STREAMS["optimum"], first),
                                          **self.optimum_options)
                self._cache[okey] = {"optimum": scenario.skr(sub, design).detach()}
            out.update(self._cache[okey])
        return out

    def _on_batch_end(self, trainer, pl_module, outputs, batch, stage):
        if trainer.sanity_checking or not isinstance(outputs, dict) or "skr" not in outputs:
            return
        if INDEX_KEY not in batch:
            raise ValueError(f"BaselineCallback needs batches with {INDEX_KEY!r} (ScenarioDataModule adds it)")
        valid = batch[INDEX_KEY] >= 0  # -1: DDP padding rows (datamodules/scenario.py), never counted
        if not bool(valid.all()):
            if not bool(valid.any()):
                return
            batch = {k: v[valid] for k, v in batch.items()}
            outputs = {**outputs, "skr": outputs["skr"][valid.to(outputs["skr"].device)]}
        with_opt = stage == "test" or (trainer.current_epoch % self.optimum_every_n_epochs == 0)
        scenario = pl_module.scenario
        base = self._baseline_skr(scenario, batch, stage, with_opt)
        learned = outputs["skr"].detach().to("cpu", torch.float64)
        index = batch[INDEX_KEY].cpu()
        limit = self.test_optimum_draws if stage == "test" else self.optimum_draws
        take = index < limit
        masks = {"": torch.ones(learned.shape[0], dtype=torch.bool)}
        plain = {k: v.detach().cpu() for k, v in strip_index(batch).items()}
        masks.update({f"{name}/": m.cpu().bool() for name, m in scenario.subsets(plain).items()})
        for pre, mask in masks.items():
            self._add(pre + LEARNED, learned[mask])
            for name, v in base.items():
                if name != "optimum":
                    self._add(pre + name, v[mask])
            if "optimum" in base:
                self._add(pre + "optimum", base["optimum"][mask[take]])
                self._add(pre + "optimum_learned", learned[take & mask])

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._on_batch_end(trainer, pl_module, outputs, batch, "val")

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._on_batch_end(trainer, pl_module, outputs, batch, "test")

    # -- per epoch ------------------------------------------------------------------------
    def _reduce(self, trainer) -> dict[str, torch.Tensor]:
        """Sums and counts over every rank; keys (and their row sizes) as rank 0 saw them."""
        layout = trainer.strategy.broadcast(sorted((k, v.numel()) for k, v in self._sums.items()), src=0)
        if not layout:
            return {}
        flat = torch.cat([self._sums.get(k, torch.zeros(n, dtype=torch.float64)) for k, n in layout])
        device = trainer.strategy.root_device
        flat = trainer.strategy.reduce(flat.to(device), reduce_op="sum").to("cpu", torch.float64)
        out, i = {}, 0
        for k, n in layout:
            out[k] = flat[i:i + n]
            i += n
        return out

    def _summarise(self, stage: str, trainer, pl_module) -> dict[str, float]:
        sums = self._reduce(trainer)
        self._sums = {}
        table: dict[str, float] = {}
        prefixes = sorted({k.rsplit("/", 1)[0] + "/" if "/" in k else "" for k in sums})
        for pre in prefixes:
            row = sums.get(pre + LEARNED)
            if row is None or row[-1] <= 0:
                continue
            learned_users = row[:-1] / row[-1]
            learned = float(learned_users.sum())
            key = f"{stage}/{pre}"
            table[key + "skr_bits"] = learned
            table[key + "num_draws"] = float(row[-1])
            if learned_users.numel() > 1:
                for k, v in enumerate(learned_users.tolist()):
                    table[key + f"skr_bits_user{k}"] = v
            names = [k[len(pre):] for k in sums if k.startswith(pre) and "/" not in k[len(pre):]
                     and k[len(pre):] not in (LEARNED, "optimum", "optimum_learned")]
            for name in names:
                b = sums[pre + name]
                if b[-1] <= 0:
                    continue
                users = b[:-1] / b[-1]
                table[key + f"skr_bits_{name}"] = float(users.sum())
                table[key + f"gain_over_{name}"] = learned - float(users.sum())
                if users.numel() > 1:
                    for k, v in enumerate(users.tolist()):
                        table[key + f"skr_bits_{name}_user{k}"] = v
            opt, on = sums.get(pre + "optimum"), sums.get(pre + "optimum_learned")
            if opt is not None and opt[-1] > 0:
                o = float((opt[:-1] / opt[-1]).sum())
                lo = float((on[:-1] / on[-1]).sum())
                table[key + "skr_bits_optimum"] = o
                table[key + "skr_bits_on_optimum_draws"] = lo
                table[key + "fraction_of_optimum"] = lo / o if o != 0 else float("nan")
        # the module logs {stage}/skr_bits itself (a synced MeanMetric); the values here are already
        # global on every rank, so no further sync
        pl_module.log_dict({k: v for k, v in table.items() if k != f"{stage}/skr_bits"}, sync_dist=False)
        return table

    def on_validation_epoch_start(self, trainer, pl_module):
        self._sums = {}

    def on_test_epoch_start(self, trainer, pl_module):
        self._sums = {}

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            self._sums = {}
            return
        self.last_tables["val"] = self._summarise("val", trainer, pl_module)

    def on_test_epoch_end(self, trainer, pl_module):
        self.last_tables["test"] = self._summarise("test", trainer, pl_module)
        if self.print_table and trainer.is_global_zero:
            print(format_table(self.last_tables["test"], "test", learned_name=type(pl_module.net).__name__))


def format_table(table: dict[str, float], stage: str, learned_name: str = "learned") -> str:
    """Markdown tables (one per subset): design, mean SKR in bits (summed over users), learned minus
    design, and for multi-user scenarios the per-user means."""
    lines = []
    prefixes = [""] + sorted({k[len(stage) + 1:].rsplit("/", 1)[0] + "/" for k in table
                              if k.count("/") >= 2})
    for pre in prefixes:
        key = f"{stage}/{pre}"
        if key + "skr_bits" not in table:
            continue
        n = int(table.get(key + "num_draws", 0))
        users = sorted(int(k[len(key + "skr_bits_user"):]) for k in table if k.startswith(key + "skr_bits_user"))
        per_user = bool(users)
        names = [k[len(key + "gain_over_"):] for k in table if k.startswith(key + "gain_over_")]
        head = "| design | mean SKR (bits) | learned minus design (bits) |" + (" per user (bits) |" if per_user else "")
        lines += [f"\n{stage} set{' (' + pre[:-1] + ')' if pre else ''}, {n} draws", head,
                  "|---|---:|---:|" + ("---|" if per_user else "")]

        lines.append(f"| {learned_name} | {table[key + 'skr_bits']:.4f} | |" + _user_cell(table, key, "", users))
        for name in names:
            lines.append(f"| {name} | {table[key + f'skr_bits_{name}']:.4f} | {table[key + f'gain_over_{name}']:+.4f} |"
                         + _user_cell(table, key, f"_{name}", users))
        if key + "skr_bits_optimum" in table:
            lines.append(f"| optimum (draws with index < limit) | {table[key + 'skr_bits_optimum']:.4f} | "
                         f"{learned_name} on same draws: {table[key + 'skr_bits_on_optimum_draws']:.4f} "
                         f"({100 * table[key + 'fraction_of_optimum']:.2f}% of optimum) |"
                         + ("  |" if per_user else ""))
    return "\n".join(lines)


def _user_cell(table: dict[str, float], key: str, suffix: str, users: list[int]) -> str:
    """The per-user column of a multi-user table ('' for a single link)."""
    if not users:
        return ""
    vals = [table.get(key + f"skr_bits{suffix}_user{k}") for k in users]
    return " " + ", ".join("" if v is None else f"{v:.3f}" for v in vals) + " |"
