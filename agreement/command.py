"""``python train.py agree``: key agreement for the design a training config describes.

    python train.py agree --config configs/pkgnet/irs_case2.yaml --json irs_wf.json            # water-filling
    python train.py agree --config configs/pkgnet/irs_case2.yaml --ckpt_path <run>/checkpoints/last.ckpt
    python train.py agree --config configs/pkgnet/nearfield.yaml --export nearfield.pt2 --point '{"P_t_dbm": 20}'
    python train.py agree --config configs/pkgnet/multiuser.yaml --design eigen_beams --user 2
    python train.py agree --config configs/kgnet/kgnet.yaml --ckpt_path <run>/checkpoints/last.ckpt

The system and every scenario setting come from the config the design was trained with (PKG-Net: the model's
``scenario``; KGNet: the data module's HDF5 file, seed and splits); the operating point is the scenario's
``point()`` default, overridable field by field with ``--point``. The design is a checkpoint of that config
(``--ckpt_path``, read with ``weights_only=True`` and checked against the config), a ``.pt2`` export whose
metadata must match the config's scenario (``--export``), or an analytic design by name (``--design``).
Every bad input is refused (one ``error:`` line, exit status 2, from ``train.py``) before anything is simulated.
"""

from __future__ import annotations

import inspect
import json as _json
import math
import numbers
from pathlib import Path
from typing import Any

__all__ = ["agree", "check_flags", "format_multiuser_report", "format_report"]

MIN_PROBES = 100


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _quantiser(quantiser, levels, guard, epsilon) -> dict[str, Any]:
    return {key: val for key, val in (("method", quantiser), ("levels", levels), ("guard", guard),
                                      ("epsilon", epsilon)) if val is not None}


def _check_flags(*, ckpt_path, export, json, overwrite, point, probes, calibration_probes, method, block_bits,
                 quantiser, levels, guard, epsilon, eps, symbol_bits, seed, rho_min, max_mode_leak) -> None:
    from keygen.pipeline import METHODS, QUANTISERS, check_settings

    for flag, v in (("--probes", probes), ("--calibration_probes", calibration_probes)):
        _check(v is None or (_is_int(v) and v >= MIN_PROBES), f"{flag} {v} is not allowed; need an integer >= "
                                                              f"{MIN_PROBES}")
    _check(block_bits is None or (_is_int(block_bits) and block_bits >= 256),
           f"--block_bits {block_bits} is not allowed; need an integer >= 256")
    _check(_is_real(eps) and 0.0 < eps < 1.0,
           f"--eps {eps} is not allowed; the security parameter must lie in (0, 1), e.g. 1e-10")
    _check(levels is None or (_is_int(levels) and levels >= 2 and not levels & (levels - 1)),
           f"--levels {levels} is not allowed; K must be a power of two >= 2")
    _check(guard is None or (_is_real(guard) and 0.0 <= guard < 1.0),
           f"--guard {guard} is not allowed; it must lie in [0, 1)")
    _check(epsilon is None or (_is_real(epsilon) and 0.0 < epsilon < 0.5),
           f"--epsilon {epsilon} is not allowed; it must lie in (0, 0.5)")
    _check(_is_int(symbol_bits) and 1 <= symbol_bits <= 16,
           f"--symbol_bits {symbol_bits} is not allowed; it must lie in 1..16")
    _check(_is_int(seed) and seed >= 0, f"--seed {seed} is not allowed; need an integer >= 0")
    _check(rho_min is None or (_is_real(rho_min) and 0.0 <= rho_min < 1.0),
           f"--rho_min {rho_min} is not allowed; it must lie in [0, 1)")
    _check(max_mode_leak is None or (_is_real(max_mode_leak) and 0.0 <= max_mode_leak <= 1.0),
           f"--max_mode_leak {max_mode_leak} is not allowed; it must lie in [0, 1]")
    _check(method in METHODS, f"--method {method!r} is not allowed; use one of {METHODS}")
    _check(quantiser is None or quantiser in QUANTISERS,
           f"--quantiser {quantiser!r} is not allowed; use one of {QUANTISERS}")
    _check(point is None or isinstance(point, dict), f"--point {point!r} is not allowed; give a dict of point fields, "
                                                     "e.g. '{\"P_max_dbm\": 15}'")
    _check(not (ckpt_path and export), "give --ckpt_path or --export, not both")
    if json is not None:
        p = Path(json)
        _check(bool(str(json).strip()), "--json is empty; give a file name")
        _check(not p.is_dir(), f"--json {json!r} is a directory; give a file name")
        _check(p.parent.is_dir(), f"--json {json!r}: folder {str(p.parent)!r} does not exist")
        _check(overwrite or not p.exists(), f"--json {json!r} already exists; pass --overwrite true to replace it")
    check_settings(method=method, block_bits=block_bits, eps=eps, symbol_width=symbol_bits, seed=seed,
                   quantiser=_quantiser(quantiser, levels, guard, epsilon))


def check_flags(config) -> None:
    """Refuse the ``agree`` flags that need no model (``config``: the parsed subcommand namespace or a dict);
    ``train.py`` calls this before it instantiates anything."""
    names = inspect.signature(_check_flags).parameters
    given = {k: config.get(k) for k in names if k in config}
    defaults = inspect.signature(agree).parameters
    _check_flags(**{k: given.get(k, defaults[k].default) for k in names})


def _system_of(model) -> str:
    """``irs``, ``nearfield``, ``multiuser`` or ``kgnet`` from the config's model; ValueError otherwise."""
    from physics import multiuser, nearfield

    from .irs import IRSScenario

    record = model.checkpoint_record() if hasattr(model, "checkpoint_record") else {}
    if record.get("family") == "kgnet":
        return "kgnet"
    scenario = getattr(model, "scenario", None)
    if isinstance(scenario, IRSScenario):
        return "irs"
    if isinstance(scenario, nearfield.NearFieldScenario):
        return "nearfield"
    if isinstance(scenario, multiuser.MultiUserScenario):
        return "multiuser"
    what = type(scenario).__name__ if scenario is not None else type(model).__name__
    raise ValueError(f"agree knows the IRS, near-field and multi-user PKG-Net scenarios and KGNet; the config builds "
                     f"{what}")


def _design_names(system: str, model, point: dict[str, Any]) -> tuple[str, ...]:
    if system == "irs":
        from .irs import IRSSystem

        return IRSSystem.DESIGNS
    if system == "nearfield":
        from .nearfield import NearFieldSystem

        return NearFieldSystem.designs(model.scenario, point)
    if system == "multiuser":
        from .multiuser import MultiUserSystem

        return MultiUserSystem.DESIGNS
    from .kgnet import KGNetSystem

    return KGNetSystem.DESIGNS


def _check_point(system: str, model, point: dict[str, Any]) -> None:
    """The scenario's own ``point()`` refuses unknown fields (naming the allowed ones) and bad values."""
    if system == "kgnet":
        from .kgnet import KGNetSystem

        KGNetSystem.check_point(point)
        return
    scenario = model.scenario
    if system == "irs":
        from .irs import IRSSystem

        scenario = IRSSystem.physics_scenario(scenario)
    try:
        batch = scenario.point(1, **point)
        if system == "irs":
            scenario.stats(batch)  # eta, kappa and the positions are checked where the statistics are built
    except (TypeError, RuntimeError) as exc:  # a value torch cannot read as a number
        raise ValueError(f"--point {point!r}: {exc}") from None


def agree(self, model, datamodule=None, ckpt_path: str | None = None, export: str | None = None,
          design: str | None = None, json: str | None = None, overwrite: bool = False, point: dict | None = None,
          probes: int | None = None, calibration_probes: int | None = None, method: str = "cascade",
          block_bits: int | None = None, quantiser: str | None = None, levels: int | None = None,
          guard: float | None = None, epsilon: float | None = None, eps: float = 1e-10, symbol_bits: int = 8,
          seed: int = 0, user: int | None = None, rho_min: float | None = None, max_mode_leak: float | None = None,
          progress: bool = True) -> dict:
    """Key agreement for the config's design: probe the system, quantise, reconcile, privacy-amplify, report.

    The system and its settings come from the config (PKG-Net: the model's scenario; KGNet: the data module's
    HDF5 file and splits). Prints the report; ``--json`` writes it.

    Args:
        ckpt_path: a checkpoint of this config (PKG-Net or KGNet; read with weights_only=True).
        export: a .pt2 of ``train.py export`` whose metadata matches the config's scenario.
        design: an analytic design by name (irs: water_filling (default), exact, identity, random; nearfield: a
            scenario baseline, optimal_beam (default); multiuser: beam_selection (default), strongest_overlapping,
            eigen_beams, optimal, random; kgnet: no_mapping); ``pkgnet``/``kgnet`` with ``ckpt_path`` or ``export``.
        json: write the report as JSON to this file (its folder must exist).
        overwrite: replace an existing ``json`` file (refused otherwise).
        point: operating-point fields overriding the scenario's ``point()`` default, as a JSON/YAML dict, e.g.
            '{"P_max_dbm": 15, "eta": 0.8}' (irs), '{"P_t_dbm": 20}' (nearfield), '{"snr_db": 20, "gap": 0.05}'
            (multiuser), '{"snr_db": null}' (kgnet: AWGN SNR in dB on both bands, default 30; null: noise-free).
        probes: probing rounds of the key run, >= 100 (default 20000; kgnet: every test user).
        calibration_probes: probing rounds of the calibration run, >= 100 (default 20000; kgnet: every
            validation user).
        method: information reconciliation, cascade or ldpc.
        block_bits: frame length (default: cascade the power of two >= max(4096, 16 k1), at most 65536; ldpc 2048).
        quantiser: equiprobable or gdqg (default: the system's).
        levels: quantisation levels K (a power of two >= 2).
        guard: equiprobable guard probability in [0, 1).
        epsilon: GDQG guard epsilon in (0, 0.5).
        eps: leftover-hash security parameter in (0, 1).
        symbol_bits: MCV symbol width in bits (1..16).
        seed: seed of the probing and of the protocol's public randomness.
        user: multiuser: the UT the BS keys with (0..K-1); default every UT (report per UT and summed).
        rho_min: irs, multiuser: minimum canonical correlation of a used pair (default 0.7).
        max_mode_leak: multiuser: drop a canonical pair when another UT's information about it exceeds this
            fraction of Alice-Bob's (default 0.25).
        progress: show a progress bar over the reconciliation frames.
    """
    # -- every flag first: nothing is loaded or simulated before all of them pass -------------------
    _check_flags(ckpt_path=ckpt_path, export=export, json=json, overwrite=overwrite, point=point, probes=probes,
                 calibration_probes=calibration_probes, method=method, block_bits=block_bits, quantiser=quantiser,
                 levels=levels, guard=guard, epsilon=epsilon, eps=eps, symbol_bits=symbol_bits, seed=seed,
                 rho_min=rho_min, max_mode_leak=max_mode_leak)
    point = dict(point or {})
    system = _system_of(model)
    if user is not None:
        _check(system == "multiuser", "--user applies to a multi-user config only")
        K = model.scenario.K
        _check(_is_int(user) and 0 <= user < K, f"--user {user} is not allowed; choose a UT in 0..{K - 1} or leave it "
                                                "out for every UT")
    _check(rho_min is None or system in ("irs", "multiuser"), "--rho_min applies to irs and multi-user configs only")
    _check(max_mode_leak is None or system == "multiuser", "--max_mode_leak applies to a multi-user config only")
    _check_point(system, model, point)
    learned_name = "kgnet" if system == "kgnet" else "pkgnet"
    names = _design_names(system, model, point)
    if design is None:
        design = learned_name if (ckpt_path or export) else None
    if design is not None and design not in names:
        raise ValueError(f"--design {design!r} is not allowed for the {system} system; choose one of {names}")
    if system == "multiuser" and design is not None:
        from .multiuser import MultiUserSystem

        MultiUserSystem.check_design(design)
    if design == learned_name and not (ckpt_path or export):
        raise ValueError(f"--design {learned_name} needs the trained net: --ckpt_path (a checkpoint of this config) "
                         "or --export (its .pt2)")
    if design is not None and design != learned_name and (ckpt_path or export):
        raise ValueError(f"--design {design!r} is an analytic design; it takes no --ckpt_path/--export (use --design "
                         f"{learned_name} or leave --design out)")
    if system == "kgnet":
        h5 = datamodule.h5_path if datamodule is not None else None
        _check(datamodule is not None and hasattr(datamodule, "evaluation_set"),
               "a KGNet config needs its DualBandDataModule (the dual-band data it was trained on)")
        _check(h5 is None or Path(h5).is_file(), f"--data.init_args.h5_path {str(h5)!r}: no such file; agree reads "
                                                 "the dual-band HDF5 the design was trained on and never generates one")
        _check(design is not None, "a KGNet config needs --ckpt_path or --export (the trained band map), or --design "
                                   "no_mapping")
    q = _quantiser(quantiser, levels, guard, epsilon)

    # -- the trained design (checked against the config), then the system ---------------------------
    source: dict[str, Any] = {}
    learned = None
    if ckpt_path:
        from models.checkpoints import check_record, load_checkpoint

        ckpt = load_checkpoint(ckpt_path)
        check_record(ckpt, model.checkpoint_record(), ckpt_path)
        model.load_state_dict(ckpt["state_dict"])
        source = {"checkpoint": str(ckpt_path)}
        if system == "kgnet":
            from .kgnet import band_map_from_module

            state = next((v for k, v in ckpt.items() if k.endswith("DataModule") and isinstance(v, dict)), None)
            if state:
                datamodule.load_state_dict(state)  # the training split's normaliser
            learned = band_map_from_module(model)
        else:
            from .system import learned_from_module

            learned = learned_from_module(model)
    elif export:
        from models.export import load_program

        _check(Path(export).is_file(), f"--export {export!r}: no such file (a .pt2 from python train.py export)")
        program, meta = load_program(export)
        source = {"export": str(export)}
        if system == "kgnet":
            from .kgnet import band_map_from_export, check_kgnet_export

            check_kgnet_export(meta, model, datamodule, export)
            learned = band_map_from_export(program, datamodule)
        else:
            from .system import check_export_scenario, learned_from_export

            check_export_scenario(meta, model.scenario, export)
            learned = learned_from_export(program, meta)
    report = _run(system, model, datamodule, design, learned, source, point, user=user, rho_min=rho_min,
                  max_mode_leak=max_mode_leak, probes=probes, calibration_probes=calibration_probes, seed=seed,
                  method=method, block_bits=block_bits, eps=eps, quantiser=q, symbol_width=symbol_bits,
                  progress=progress)
    print(format_multiuser_report(report) if "per_user" in report else format_report(report))
    if json is not None:
        from models.export import atomic_write

        text = _json.dumps(report, indent=2, default=float)
        atomic_write(json, lambda tmp: Path(tmp).write_text(text))
    return report


def _run(system: str, model, datamodule, design, learned, source, point, *, user, rho_min, max_mode_leak, probes,
         calibration_probes, **kw) -> dict[str, Any]:
    from .system import run_system

    rho = 0.7 if rho_min is None else rho_min
    if system == "irs":
        from .irs import IRSSystem

        sys_ = IRSSystem(model.scenario, design or IRSSystem.DEFAULT_DESIGN, learned=learned, source=source,
                         point=point, rho_min=rho)
    elif system == "nearfield":
        from .nearfield import NearFieldSystem

        sys_ = NearFieldSystem(model.scenario, design or NearFieldSystem.DEFAULT_DESIGN, learned=learned,
                               source=source, point=point)
    elif system == "multiuser":
        from .multiuser import MultiUserSystem, run_all_users

        sys_ = MultiUserSystem(model.scenario, design or MultiUserSystem.DEFAULT_DESIGN, learned=learned,
                               source=source, user=user or 0, point=point, rho_min=rho,
                               max_mode_leak=0.25 if max_mode_leak is None else max_mode_leak)
        if user is None:
            return run_all_users(sys_, probes=probes or 20000, calibration_probes=calibration_probes or 20000, **kw)
    else:
        from .kgnet import KGNetSystem

        sys_ = KGNetSystem(datamodule, design, band_map=learned, source=source, point=point)
        probes = probes or sys_.split_size("test")
        calibration_probes = calibration_probes or sys_.split_size("val")
    return run_system(sys_, probes=probes or 20000, calibration_probes=calibration_probes or 20000, **kw)


# ---------------------------------------------------------------------------------------------
# the printed tables
# ---------------------------------------------------------------------------------------------


def format_report(r: dict[str, Any]) -> str:
    """The printed table of one report."""
    rc, eb = r["reconciliation"], r["entropy_budget"]
    rows = [
        ("system / design", f"{r['system']['system']} / {r['design']}"),
        ("probes", f"{r['probes']}"),
        ("initial key rate (bits/probe)", f"{r['initial_key_bits_per_probe']:.3f}"),
        ("initial KDR (Alice-Bob)", f"{r['initial_kdr']:.4f}"),
        ("Eve initial bit agreement", "-" if r["eve_initial_bit_agreement"] is None
         else f"{r['eve_initial_bit_agreement']:.4f}"),
        (f"reconciliation ({rc['method']}, {rc['frame_bits']}-bit frames)",
         f"{rc['frames']} frames, success {rc['frame_success_rate']:.4f}, efficiency {rc['efficiency']:.3f}, "
         f"{rc['rounds_per_frame']:.1f} rounds, {1e3 * rc['time_per_frame_s']:.1f} ms/frame"),
        ("disclosed bits (total / per probe)", f"{r['disclosed_bits']} / {r['disclosed_bits_per_probe']:.3f}"),
        ("entropy budget (bits/key bit)", f"h_min {eb['h_min_per_bit']:.4f} - Eve {eb['eve_leak_per_bit']:.4f} "
                                          f"= {eb['secret_per_bit']:.4f}"),
        ("final key bits / keys", f"{r['final_key_bits']} / {r['final_keys']} "
                                  f"(refused {r['privacy_amplification']['frames_refused']})"),
        ("final secret bits per probe", f"{r['secret_bits_per_probe']:.3f}"),
        ("SKR bound (bits/probe)", f"{r['skr_bound_bits']:.3f}  [{r['skr']['kind']}]"),
        ("final key agreement (blocks)", f"{r['final_key_agreement']:.4f}"),
        ("Eve bit agreement (final keys)", "-" if r["eve_bit_agreement"] is None else f"{r['eve_bit_agreement']:.4f}"),
    ]
    init = r.get("initial_nist_pass_ratio", {})
    for k, v in r["nist_pass_ratio"].items():
        before = f"   (initial keys: {init[k]:.4f})" if k in init and init[k] == init[k] else ""
        rows.append((f"NIST {k}", ("nan" if v != v else f"{v:.4f}") + before))
    w = max(len(a) for a, _ in rows)
    return "\n".join(f"{a:<{w}}  {b}" for a, b in rows)


def format_multiuser_report(r: dict[str, Any]) -> str:
    """The printed table of a multi-user report over every UT: one row per UT, then the pooled totals."""
    head = (f"{'UT':>3} {'Eve':>4} {'modes':>5} {'init b/p':>8} {'KDR':>7} {'eff':>6} {'secret b/p':>10} "
            f"{'bound':>7} {'agree':>6} {'Eve agr':>7}")
    lines = [f"system / design: multiuser / {r['design']}, {r['probes']} probes, SKR bound: {r['skr']['kind']}", head]
    for u in r["per_user"]:
        s, rc = u["system"], u["reconciliation"]
        lines.append(f"{s['user']:>3} {s['eve_ut']:>4} {len(s['modes_used']):>5} "
                     f"{u['initial_key_bits_per_probe']:>8.3f} "
                     f"{u['initial_kdr']:>7.4f} {rc['efficiency']:>6.3f} {u['secret_bits_per_probe']:>10.3f} "
                     f"{u['skr_bound_bits']:>7.3f} {u['final_key_agreement']:>6.4f} "
                     f"{(u['eve_bit_agreement'] if u['eve_bit_agreement'] is not None else float('nan')):>7.4f}")
    for u in r.get("users_without_key", []):
        lines.append(f"{u['user']:>3}  no key (bound {u['skr_bound_bits']:.3f}): {u['reason']}")
    rc = r["reconciliation"]
    lines += [f"total: final secret bits per probe {r['secret_bits_per_probe']:.3f} vs SKR bound "
              f"{r['skr_bound_bits']:.3f}; final key agreement {r['final_key_agreement']:.4f} "
              f"({r['final_keys']} keys); Eve bit agreement {r['eve_bit_agreement']:.4f}; efficiency "
              f"{rc['efficiency']:.3f}; frames {rc['frames']}, success {rc['frame_success_rate']:.4f}"]
    for k, v in r["nist_pass_ratio"].items():
        lines.append(f"NIST {k} {'nan' if v != v else f'{v:.4f}'}")
    return "\n".join(lines)
