"""Near-field XL-MIMO key generation (paper 004): channel, SKR (23), designs of W, probing model, scenario.

An N-element ULA (Alice, the BS) sends random pilots with covariance W to a single-antenna Bob while a
single-antenna Eve listens; the spherical-wave LoS channels f (Bob) and h (Eve) of 004 (2)-(3) decide the SKR
(23) (conventions pinned in docs/architecture.md section 1). Split by job: :mod:`~physics.nearfield.channel`
(004 (2)-(3)), :mod:`~physics.nearfield.rates` ((13)-(23) and the covariance-form reference),
:mod:`~physics.nearfield.designs` (MRC, SVD with and without Dinkelbach's power split, the closed-form optimum,
the compact design format), :mod:`~physics.nearfield.probing` (the probing rounds of Sec. III, for Monte Carlo)
and :mod:`~physics.nearfield.scenario` (:class:`NearFieldScenario` in the scenario contract).

The result the paper missed (docs/architecture.md section 1): (P1) is a concave problem, and its optimum is the
single random beam of :func:`optimal_design`.
"""

from physics.nearfield.channel import CARRIER_HZ_RANGE, R_M_MAX, near_field_channel
from physics.nearfield.designs import (
    design_gram,
    design_matrix,
    dinkelbach_power_split,
    mrc_design,
    optimal_alpha,
    optimal_beam,
    optimal_design,
    svd_design,
)
from physics.nearfield.probing import conditional_mi_bits_from_samples, probe
from physics.nearfield.rates import FEASIBILITY_TOL, skr, skr_covariance_form, skr_from_gram
from physics.nearfield.scenario import (
    FRAMES,
    N_MAX_SCENARIO,
    NOISE_DBM_LIMITS,
    P_T_DBM_LIMITS,
    NearFieldDesignSpace,
    NearFieldScenario,
)

__all__ = [
    "near_field_channel", "skr", "skr_from_gram", "skr_covariance_form", "dinkelbach_power_split",
    "optimal_design", "optimal_beam", "optimal_alpha", "mrc_design", "svd_design", "design_gram",
    "design_matrix", "probe", "conditional_mi_bits_from_samples", "NearFieldDesignSpace", "NearFieldScenario",
    "CARRIER_HZ_RANGE", "FEASIBILITY_TOL", "FRAMES", "N_MAX_SCENARIO", "NOISE_DBM_LIMITS", "P_T_DBM_LIMITS",
    "R_M_MAX",
]
