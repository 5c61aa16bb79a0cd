"""IRS-assisted multi-antenna PKG (papers 000 and 001).

Split by job: :mod:`~physics.irs.stats` (:class:`IRSStats`, the paper geometries), :mod:`~physics.irs.rates`
(the SKR closed forms 000 (17), 001 (32)-(38) and the literal Kronecker reference), :mod:`~physics.irs.designs`
(water-filling, exact, identity, random, equal phases), :mod:`~physics.irs.optimum` (the per-instance ceiling),
:mod:`~physics.irs.probing` (Monte-Carlo channels and observations) and :mod:`~physics.irs.scenario`
(:class:`IRSScenario` in the scenario contract). The public names are re-exported here: ``physics.irs.X``.
"""

from physics.irs.designs import (
    Design,
    equal_phases,
    exact_design,
    identity_design,
    normalise_power,
    precoder_from_allocation,
    random_design,
    water_filling,
    water_filling_design,
    waterfill_objective_constants,
    waterfill_z,
)
from physics.irs.optimum import OptimumResult, optimum
from physics.irs.probing import NLoSChannels, draw_nlos_channels, observations
from physics.irs.rates import (
    THETA_MODULUS_TOL,
    check_unit_modulus,
    joint_covariance_kronecker,
    kronecker_covariances,
    skr,
    skr_case1,
    skr_case1_kronecker,
    skr_case2,
    skr_case2_parts,
)
from physics.irs.scenario import IRSDesignSpace, IRSScenario, design_to_real
from physics.irs.stats import (
    GEOMETRY_000,
    GEOMETRY_001,
    IRSGeometry,
    IRSStats,
    irs_stats_from_geometry,
    stats_000,
    stats_001,
)
from physics.optim import waterfill_allocation  # the shared KKT water-filling the designs use

__all__ = [
    "GEOMETRY_000", "GEOMETRY_001", "THETA_MODULUS_TOL", "Design", "IRSDesignSpace", "IRSGeometry", "IRSScenario",
    "IRSStats", "NLoSChannels", "OptimumResult", "check_unit_modulus", "design_to_real", "draw_nlos_channels",
    "equal_phases", "exact_design", "identity_design", "irs_stats_from_geometry", "joint_covariance_kronecker",
    "kronecker_covariances", "normalise_power", "observations", "optimum", "precoder_from_allocation",
    "random_design", "skr", "skr_case1", "skr_case1_kronecker", "skr_case2", "skr_case2_parts", "stats_000",
    "stats_001", "water_filling", "water_filling_design", "waterfill_allocation", "waterfill_objective_constants",
    "waterfill_z",
]
