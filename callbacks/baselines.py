"""BaselineCallback: analytic baselines on the same validation/test draws as the learned design.

It observes only: it never touches the loss or the model's parameters. Baselines depend on the draws
only (not on the model), and validation/test draws are fixed, so each baseline is computed once per
batch and cached; the per-instance optimum runs on the first ``optimum_draws`` draws of each set.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from physics.scenarios import generator_for

_BASELINE_STREAM, _OPTIMUM_STREAM = 4, 5


class BaselineCallback(pl.Callback):
    """Logs ``{stage}/skr_bits_<name>`` and ``{stage}/gain_over_<name>`` (PKG-Net minus baseline, bits)
    for water-filling, random and identity/equal-phase; ``{stage}/skr_bits_optimum``,
    ``{stage}/skr_bits_on_optimum_draws`` and ``{stage}/fraction_of_optimum`` on the optimum subset;
    and the same per named subset of the scenario (e.g. ``test/hard/...``)."""

    def __init__(self, optimum_draws: int = 64, optimum_every_n_epochs: int = 5, optimum_steps: int = 300,
                 optimum_restarts: int = 4, test_optimum_draws: int = 1000, seed: int = 0,
                 print_table: bool = True):
        super().__init__()
        if optimum_draws < 0 or test_optimum_draws < 0:
            raise ValueError("optimum_draws and test_optimum_draws must be >= 0")
        if optimum_every_n_epochs < 1:
            raise ValueError(f"optimum_every_n_epochs must be >= 1, got {optimum_every_n_epochs}")
        self.optimum_draws = int(optimum_draws)
        self.optimum_every_n_epochs = int(optimum_every_n_epochs)
        self.optimum_kwargs = {"steps": int(optimum_steps), "restarts": int(optimum_restarts)}
        self.test_optimum_draws = int(test_optimum_draws)
        self.seed = int(seed)
        self.print_table = print_table
        self._cache: dict[tuple[str, int], dict[str, torch.Tensor]] = {}
        self._acc: dict[str, list[torch.Tensor]] = {}
        self.last_table: dict[str, float] = {}

    # -- per batch ------------------------------------------------------------------------
    def _baseline_skr(self, pl_module, batch, stage: str, batch_idx: int, with_optimum: bool, draws_seen: int):
        key = (stage, batch_idx)
        scenario = pl_module.scenario
        cpu_batch = {k: v.detach().to("cpu", torch.float64) for k, v in batch.items()}
        if key not in self._cache:
            designs = scenario.baselines(cpu_batch, generator_for(self.seed, _BASELINE_STREAM, batch_idx))
            self._cache[key] = {name: scenario.skr(cpu_batch, d) for name, d in designs.items()}
        out = dict(self._cache[key])
        limit = self.test_optimum_draws if stage == "test" else self.optimum_draws
        n = next(iter(cpu_batch.values())).shape[0]
        take = max(0, min(n, limit - draws_seen))
        if with_optimum and take > 0:
            okey = (stage + "/optimum", batch_idx)
            if okey not in self._cache:
                sub = {k: v[:take] for k, v in cpu_batch.items()}
                design = scenario.optimum(sub, generator_for(self.seed, _OPTIMUM_STREAM, batch_idx),
                                          **self.optimum_kwargs)
                self._cache[okey] = {"optimum": scenario.skr(sub, design)}
            out.update(self._cache[okey])
        return out, take

    def _on_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, stage):
        if trainer.sanity_checking or outputs is None or "skr" not in outputs:
            return
        with_opt = stage == "test" or (trainer.current_epoch % self.optimum_every_n_epochs == 0)
        seen = sum(t.numel() for t in self._acc.get("optimum_learned", []))
        base, take = self._baseline_skr(pl_module, batch, stage, batch_idx, with_opt, seen)
        learned = outputs["skr"].detach().to("cpu", torch.float64)
        self._acc.setdefault("learned", []).append(learned)
        for name, v in base.items():
            self._acc.setdefault(name, []).append(v)
        if "optimum" in base:
            self._acc.setdefault("optimum_learned", []).append(learned[:take])
        cpu_batch = {k: v.detach().cpu() for k, v in batch.items()}
        for sub, mask in pl_module.scenario.subsets(cpu_batch).items():
            self._acc.setdefault(f"{sub}/learned", []).append(learned[mask])
            for name, v in base.items():
                if name != "optimum":
                    self._acc.setdefault(f"{sub}/{name}", []).append(v[mask])
            if "optimum" in base:
                self._acc.setdefault(f"{sub}/optimum", []).append(base["optimum"][mask[:take]])
                self._acc.setdefault(f"{sub}/optimum_learned", []).append(learned[:take][mask[:take]])

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._on_batch_end(trainer, pl_module, outputs, batch, batch_idx, "val")

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._on_batch_end(trainer, pl_module, outputs, batch, batch_idx, "test")

    # -- per epoch ------------------------------------------------------------------------
    def _summarise(self, stage: str, pl_module) -> dict[str, float]:
        acc = {k: torch.cat(v) for k, v in self._acc.items() if v}
        self._acc = {}
        table: dict[str, float] = {}
        prefixes = [""] + sorted({k.split("/")[0] + "/" for k in acc if "/" in k})
        for pre in prefixes:
            learned = acc.get(pre + "learned")
            if learned is None or learned.numel() == 0:
                continue
            table[f"{stage}/{pre}skr_bits"] = learned.mean().item()
            table[f"{stage}/{pre}num_draws"] = float(learned.numel())
            for name in ("water_filling", "random", "identity"):
                if pre + name in acc:
                    b = acc[pre + name].mean().item()
                    table[f"{stage}/{pre}skr_bits_{name}"] = b
                    table[f"{stage}/{pre}gain_over_{name}"] = learned.mean().item() - b
            if pre + "optimum" in acc and acc[pre + "optimum"].numel() > 0:
                opt = acc[pre + "optimum"].mean().item()
                on = acc[pre + "optimum_learned"].mean().item()
                table[f"{stage}/{pre}skr_bits_optimum"] = opt
                table[f"{stage}/{pre}skr_bits_on_optimum_draws"] = on
                table[f"{stage}/{pre}fraction_of_optimum"] = on / opt
        # the module already logs {stage}/skr_bits; log the rest
        pl_module.log_dict({k: v for k, v in table.items() if k != f"{stage}/skr_bits"}, sync_dist=True)
        return table

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            self._acc = {}
            return
        self.last_table = self._summarise("val", pl_module)

    def on_test_epoch_end(self, trainer, pl_module):
        self.last_table = self._summarise("test", pl_module)
        if self.print_table and trainer.is_global_zero:
            print(format_table(self.last_table, "test"))


def format_table(table: dict[str, float], stage: str) -> str:
    """Markdown table: design, mean SKR (bits), gain of the learned design over it."""
    lines = []
    prefixes = [""] + sorted({k[len(stage) + 1:].split("/")[0] + "/" for k in table
                              if k.count("/") >= 2})
    for pre in prefixes:
        key = f"{stage}/{pre}"
        if key + "skr_bits" not in table:
            continue
        n = int(table.get(key + "num_draws", 0))
        lines += [f"\n{stage} set{' (' + pre[:-1] + ')' if pre else ''}, {n} draws",
                  "| design | mean SKR (bits) | learned minus design (bits) |", "|---|---:|---:|",
                  f"| PKG-Net | {table[key + 'skr_bits']:.4f} | |"]
        for name in ("water_filling", "random", "identity"):
            if key + f"skr_bits_{name}" in table:
                lines.append(f"| {name} | {table[key + f'skr_bits_{name}']:.4f} | "
                             f"{table[key + f'gain_over_{name}']:+.4f} |")
        if key + "skr_bits_optimum" in table:
            lines.append(f"| optimum (first draws) | {table[key + 'skr_bits_optimum']:.4f} | PKG-Net on same draws: "
                         f"{table[key + 'skr_bits_on_optimum_draws']:.4f} "
                         f"({100 * table[key + 'fraction_of_optimum']:.2f}% of optimum) |")
    return "\n".join(lines)
