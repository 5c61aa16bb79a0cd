"""Beam-domain multi-user key generation in massive MIMO (paper 003): channel, closed forms, designs, probing,
scenario.

System (003 Sec. III-IV): a BS with an M-antenna half-wavelength ULA generates a separate key with each
of K user terminals (UTs), UT k having an N_k-antenna ULA. The downlink channel of UT k is the
geometric multipath channel (1)-(3), H_k = sum_p alpha_kp a_UT(theta_kp) a_BS(phi_kp)^H ``[N_k, M]``,
with independent complex Gaussian path gains alpha_kp ~ CN(0, g_kp) and fixed angles (the statistical
CSI). Its beam-domain form is H~_k = A_UT^H H_k A_BS (13) with the DFT matrices (16).

Conventions (pinned; docs/architecture.md section 4)
-----------------------------------------
* sin-angles: every angle enters only through its sine (``sin_aod``, ``sin_aoa``); element i of the
  ULA response is exp(-j pi i s) / sqrt(N) (d = lambda/2, (2)).
* vec stacks columns: vec(H~)[m N_k + n] = H~[n, m], so (X kron Y) vec(H~) = vec(Y H~ X^T).
* Lambda_k = E{vec(H~_k) vec(H~_k)^H} ``[M N_k, M N_k]`` (the "full correlation" of Theorem 1). With
  u_kp = A_UT^H a_UT(theta_kp) and v_kp = A_BS^H a_BS(phi_kp) (unit vectors), vec(H~_k) =
  sum_p alpha_kp conj(v_kp) kron u_kp, so Lambda_k = sum_p g_kp x_kp x_kp^H, x_kp = conj(v_kp) kron u_kp:
  rank N_P. R~_BS,k = sum_p g_kp v_kp v_kp^H and R~_UT,k = sum_p g_kp u_kp u_kp^H ((19)-(20)).
* Beam-domain precoders P~_k = A_BS^H P_k ``[M, M_e]`` and receive matrices C~_k = A_UT^H C_k
  ``[N_k, N_e]``; U_k = conj(P~_k) kron C~_k.
* Unit noise (noise-normalised units): path powers g_kp are per-path SNRs. Rates are in bits (log2),
  real float64.

Observations under pilot reuse (003 (21)-(26), every UT sends the same pilots S, S S^H = I): UT k's
downlink estimate is Z_k^DL = C~_k^H H~_k Q + noise with Q = sum_k' P~_k' (all precoded pilots reach UT k
through its own channel); the BS's uplink estimate for UT k is (Z_k^UL)^T = sum_k' C~_k'^H H~_k' P~_k +
noise with covariance P_k^T P_k^* kron I (003 (26)). Theorem 1 (30) is the Gaussian mutual information
of these two; with orthogonal pilots between users the interference vanishes and (30) becomes (31).

Numerics: every closed form is evaluated as log det of Hermitian positive-definite matrices by
Cholesky (docs/architecture.md section 5, :mod:`physics.gaussian`). Two equivalent evaluations exist: the public
functions take the full Lambda (the literal matrices of Theorem 1, O((M N_k)^2) per user pair), and the
``*_paths`` functions used by :class:`MultiUserScenario` work on the N_P path vectors (Lambda is rank N_P), so
one draw of the K = 6, M = 128 sum rate costs O(K^2 M M_e N_P) instead of O(K^2 (M N_k)^2 M_e). They agree to
1e-10 (tests/test_multiuser_physics.py) and ``benchmarks/multiuser_cost.py`` measures the ratio.

Split by job: :mod:`~physics.multiuser.channel` (ULA, DFT, geometric and beam-domain channel, path tensors,
Lambda), :mod:`~physics.multiuser.rates` ((30), (31), (27), (39), leakage ratio (43), unit SKR (48)),
:mod:`~physics.multiuser.designs` (Algorithm 1, strongest beams, eigen beams, Theorem 2, random semi-unitary,
budget), :mod:`~physics.multiuser.probing` (Monte Carlo of (21)-(26)), :mod:`~physics.multiuser.design_space`
(:class:`MultiUserDesignSpace`) and :mod:`~physics.multiuser.scenario` (:class:`MultiUserScenario`).

Paper slips resolved here (docs/architecture.md section 1): Theorem 2's optimum is the top-n eigenvectors of the
full Lambda (the unit vectors of (38)/Remark 7 only when Lambda is diagonal); beam selection ranks the
diagonal of the beam-domain R~_BS (not the eigenvalues of the antenna-domain R_BS as (40) prints);
Algorithm 1's "non-overlapping" needs a threshold (``overlap_threshold_db``); (43) uses |rho|^2 and (45)
is replaced by (43) at rho = 1; (30) has no downlink power budget (the design space adds one).
"""

from physics.multiuser.channel import (
    beam_covariances,
    beam_domain_channel,
    beam_grid,
    beam_powers_from_paths,
    beam_vectors,
    dft_matrix,
    geometric_channel,
    lambda_from_paths,
    lambda_joint_from_paths,
    path_tensors,
    shared_pair_mask,
    ula_response,
)
from physics.multiuser.design_space import MultiUserDesignSpace
from physics.multiuser.designs import (
    algorithm1_design,
    algorithm1_from_powers,
    apply_budget,
    eigen_beams_design,
    eigen_beams_from_paths,
    kron_design,
    random_semi_unitary,
    semi_unitary,
    strongest_beams_design,
    strongest_beams_from_powers,
    theorem2_design,
    unit_vector_design,
)
from physics.multiuser.probing import check_pilot_lengths, draw_path_gains, mc_mutual_information, simulate_probing
from physics.multiuser.rates import (
    leakage_ratio,
    optimal_rate,
    pilot_overhead,
    skr_leakage_aware,
    skr_leakage_aware_paths,
    skr_orthogonal_pilots,
    skr_pilot_reuse,
    skr_pilot_reuse_paths,
    theorem2_rate_paths,
    training_rates,
    unit_skr,
)
from physics.multiuser.scenario import MultiUserScenario

__all__ = [
    "MultiUserDesignSpace", "MultiUserScenario", "algorithm1_design", "algorithm1_from_powers",
    "apply_budget", "beam_covariances", "beam_domain_channel", "beam_grid", "beam_powers_from_paths", "beam_vectors",
    "check_pilot_lengths", "dft_matrix", "draw_path_gains", "eigen_beams_design", "eigen_beams_from_paths",
    "geometric_channel", "kron_design", "lambda_from_paths", "lambda_joint_from_paths", "leakage_ratio",
    "mc_mutual_information", "optimal_rate", "path_tensors", "pilot_overhead", "random_semi_unitary",
    "semi_unitary", "shared_pair_mask", "simulate_probing", "skr_leakage_aware", "skr_leakage_aware_paths",
    "skr_orthogonal_pilots", "skr_pilot_reuse", "skr_pilot_reuse_paths", "strongest_beams_design",
    "strongest_beams_from_powers", "theorem2_design", "theorem2_rate_paths", "training_rates", "unit_skr",
    "unit_vector_design", "ula_response",
]
