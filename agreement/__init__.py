"""Key agreement on the top floor: the only place that wires a physical system and a trained design to the
key pipeline (``python train.py agree``, :mod:`agreement.command`).

One adapter per system turns the config's scenario (or, for KGNet, its data module), an operating point and a
design into observation arrays of Alice, Bob and Eve and states the SKR bound and Eve's leak bound:
:mod:`agreement.irs` (000/001), :mod:`agreement.nearfield` (004), :mod:`agreement.multiuser` (003),
:mod:`agreement.kgnet` (002). :func:`agreement.system.run_system` hands them to
:func:`keygen.pipeline.run_pipeline`, which knows no system. Submodules are imported on use (``train.py``
imports :mod:`agreement.command` only, which loads the rest when the subcommand runs).
"""

__all__ = ["command", "irs", "kgnet", "multiuser", "nearfield", "system"]
