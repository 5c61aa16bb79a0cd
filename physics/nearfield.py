"""Near-field XL-MIMO key generation (paper 004): channel, SKR (23), designs of W, probing model, scenario.

System (004 Sec. II-III, conventions pinned in docs/architecture.md section 1): an N-element ULA (Alice, the BS)
on the x-axis, element n = 0..N-1 at x_n = delta_n d, delta_n = (2n - N + 1)/2, d = lambda/2,
lambda = c/f_c with c = 299 792 458 m/s; a single-antenna user u in {Bob, Eve} at
(r_u sin psi_u, r_u cos psi_u) (positive psi points to +x). The LoS channel is 004 (2)-(3) with the
sqrt(N) and 1/sqrt(N) cancelled:

    f_n = sqrt(beta_n) exp(-j 2 pi (r_n - r) / lambda),   beta_n = (lambda / (4 pi))^2 (r_n / 1 m)^-2,
    r_n = sqrt(r^2 + d^2 delta_n^2 - 2 r sin(psi) d delta_n),

f for Bob, h for Eve. Alice sends random pilots w ~ CN(0, W) (artificial randomness, Sec. III-IV),
W PSD with Tr W <= P_a. Bob observes z_b = f^H w + n_b (5), Eve z_ae = h^H w + n_e (7), Alice
z_a = f^H w + n_a (11) after precoding her uplink estimate of f. The SKR is the conditional mutual
information I(z_a; z_b | z_ae) of (13), which with sigma_B^2 = f^H W f, sigma_E^2 = h^H W h,
sigma_AE^2 = f^H W h and the *effective* noise variances of (11) (``noise_a`` = (P_a/P_b) sigma_a^2,
``noise_b``, ``noise_e``) is (23):

    R = log2(1 + alpha^2 / ((noise_a + noise_b) alpha + noise_a noise_b)),
    alpha = sigma_B^2 - |sigma_AE^2|^2 / (sigma_E^2 + noise_e)                       (24), (26).

(23) depends on W only through the 2x2 matrix G = [f h]^H W [f h], so every design here is evaluated
from G (O(N r) per draw for a rank-r factor W = F F^H), never from an N x N matrix at N = 256.

Numerics (docs/architecture.md section 5): alpha is formed as (det G + sigma_B^2 noise_e) / (sigma_E^2 + noise_e)
with det G = sigma_B^2 sigma_E^2 - |sigma_AE^2|^2 >= 0 taken from the Cauchy-Binet (Lagrange) sum of
squared 2x2 minors for factor designs, so a rank-one design with Eve on top of Bob loses nothing to
cancellation; everything is divided by a reference noise power first (the SKR is scale-free).

The result the paper missed (docs/architecture.md section 1): (P1) is a concave problem, and its optimum is the
single random beam of :func:`optimal_design`.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch
from torch import nn

from physics.scenarios import Batch, Design, Scenario, _check_range, check_positive_int, check_real
from physics.seeding import check_generator
from physics.units import LN2, SPEED_OF_LIGHT_M_S

#: Carriers outside this range are refused as absurd for an XL-MIMO near-field model (1 MHz .. 10 THz).
CARRIER_HZ_RANGE = (1e6, 1e13)
#: Relative tolerances of the feasibility checks of :func:`skr` (PSD and budget), by real dtype:
#: the smallest eigenvalue of W must be >= -tol * max(Tr W, tiny) and Tr W <= (1 + tol) * budget_w.
#: float64: 1e-9 covers eigensolver error (~N eps ||W||) up to N ~ 1e4; float32: 1e-4 likewise.
FEASIBILITY_TOL = {torch.float64: 1e-9, torch.float32: 1e-4}
#: Largest user distance accepted by :func:`near_field_channel`, metres. Not physics (the spherical-wave model
#: holds at any distance; far beyond the Rayleigh distance it is the far field): the channel squares r, and
#: r^2 overflows float64 above ~1.3e154 m (r = 1e308 m gave NaN silently). 1e150 m keeps every step finite.
R_M_MAX = 1e150
#: Transmit powers accepted by :class:`NearFieldScenario` (``P_t_dbm_range`` and the ``P_t_dbm`` of a batch),
#: dBm. 100 dBm is 10 MW, far above any radio a key-generation link would use (base stations radiate
#: ~1e2 W = 50 dBm, broadcast towers ~1e6 W = 90 dBm); -200 dBm (1e-23 W) is far below any receiver noise
#: floor (-105 dBm here). Outside these bounds 10^((P - 30)/10) W leaves float64 (inf above ~3100 dBm,
#: 0 below ~-3200 dBm) and the error would surface later as an unnamed "design over budget: inf > inf".
P_T_DBM_LIMITS = (-200.0, 100.0)
#: Noise powers accepted for ``sigma_a_dbm``, ``sigma_b_dbm``, ``sigma_e_dbm``, dBm: the same float64-safe span
#: (thermal noise in 1 Hz is -174 dBm; 5000 dBm overflowed 10^((s - 30)/10) W with an unnamed OverflowError).
NOISE_DBM_LIMITS = (-200.0, 100.0)
#: Largest array :class:`NearFieldScenario` takes (004 uses 256; extremely large arrays have a few thousand
#: elements): every draw carries two N-element complex channels through batches of thousands of draws, and
#: N = 1e8 ended in an 80 GB allocation traceback. The channel functions themselves take any N.
N_MAX_SCENARIO = 4096

__all__ = [
    "near_field_channel", "skr", "skr_from_gram", "skr_covariance_form", "dinkelbach_power_split",
    "optimal_design", "optimal_beam", "optimal_alpha", "mrc_design", "svd_design", "design_gram",
    "design_matrix", "probe", "conditional_mi_bits_from_samples", "NearFieldDesignSpace", "NearFieldScenario",
]


# --------------------------------------------------------------------------------------------
# input validation
# --------------------------------------------------------------------------------------------


def _is_real_scalar(x) -> bool:
    """A Python or numpy integer/real scalar (numpy scalars come from configs and sweeps); bools are not."""
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool | np.bool_)


def _short(x) -> str:
    r = repr(x)
    return r if len(r) <= 80 else r[:77] + "..."


def _check_N(N) -> int:
    if isinstance(N, torch.Tensor):
        if N.numel() != 1:
            raise ValueError(f"N (number of BS antennas) must be one integer >= 2, got a tensor of shape "
                             f"{tuple(N.shape)}")
        N = N.item()
    if not _is_real_scalar(N) or not math.isfinite(N) or int(N) != N or int(N) < 2:
        raise ValueError(f"N (number of BS antennas) must be an integer >= 2, got {_short(N)}")
    return int(N)


def _real_tensor(name: str, x, like: torch.Tensor | None = None) -> torch.Tensor:
    """``x`` as a real floating tensor (float64 unless it already is a float32/float64 tensor).

    Accepts real tensors (not bool), Python/numpy real scalars and real array-likes; anything else (strings,
    None, complex, bool) is a ValueError naming ``name``.
    """
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise ValueError(f"{name} must be real, got a complex tensor (dtype {x.dtype})")
        if x.dtype == torch.bool:
            raise ValueError(f"{name} must be real numbers, got a bool tensor")
        t = x if x.dtype in (torch.float32, torch.float64) else x.to(torch.float64)
    else:
        if isinstance(x, complex | np.complexfloating):
            raise ValueError(f"{name} must be real, got the complex number {x!r}")
        if isinstance(x, bool | np.bool_):
            raise ValueError(f"{name} must be a real number, got {x!r}")
        if not _is_real_scalar(x):
            try:
                kind = np.asarray(x).dtype.kind
            except Exception:                                                    # ragged lists and the like
                kind = "O"
            if kind == "c":
                raise ValueError(f"{name} must be real, got complex values")
            if kind not in "iuf":
                raise ValueError(f"{name} must be a real number or a real tensor, got {type(x).__name__} "
                                 f"{_short(x)}")
        device = like.device if like is not None else None
        t = torch.as_tensor(x, dtype=torch.float64, device=device)
    if like is not None and t.device != like.device:
        t = t.to(like.device)
    return t


def _check_finite(name: str, t: torch.Tensor, *, positive: bool = False, nonneg: bool = False) -> None:
    if not torch.all(torch.isfinite(t)):
        bad = t[~torch.isfinite(t)].reshape(-1)[0].item()
        raise ValueError(f"{name} must be finite, got {bad}")
    if positive and torch.any(t <= 0):
        raise ValueError(f"{name} must be > 0, got min {t.min().item():.6g}")
    if nonneg and torch.any(t < 0):
        raise ValueError(f"{name} must be >= 0, got min {t.min().item():.6g}")


def _check_channel(name: str, v: torch.Tensor) -> torch.Tensor:
    if not isinstance(v, torch.Tensor) or v.ndim < 1:
        raise ValueError(f"{name} must be a tensor [..., N], got {type(v).__name__}")
    if not v.is_complex():
        raise ValueError(f"{name} must be complex [..., N] (004 (2)-(3)), got dtype {v.dtype}")
    if v.shape[-1] < 2:
        raise ValueError(f"{name} must have N >= 2 entries (BS antennas, as near_field_channel requires), got "
                         f"shape {tuple(v.shape)}")
    if not torch.all(torch.isfinite(torch.view_as_real(v))):
        raise ValueError(f"{name} must be finite")
    return v.to(torch.complex128)


def _channel_pair(f: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bob's and Eve's channels checked (complex, finite, N >= 2) and of the same length N."""
    f, h = _check_channel("f", f), _check_channel("h", h)
    if h.shape[-1] != f.shape[-1]:
        raise ValueError(f"f and h must have the same length N, got {f.shape[-1]} and {h.shape[-1]}")
    return f, h


def _check_batch_shapes(**shapes: tuple[str, torch.Size]) -> None:
    """ValueError naming every argument unless their batch shapes broadcast. ``shapes``: name -> (layout, shape),
    e.g. ``W=("[..., N, N]", W.shape[:-2])``; a layout of "" marks a tensor that is all batch."""
    try:
        torch.broadcast_shapes(*(shape for _, shape in shapes.values()))
    except RuntimeError:
        parts = ", ".join(f"{nm} {lay + ' ' if lay else ''}batch shape {tuple(shape)}"
                          for nm, (lay, shape) in shapes.items() if len(shape))          # scalars always fit
        raise ValueError(f"batch dimensions do not broadcast: {parts}") from None


def _noises(noise_a, noise_b, noise_e, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    out = []
    for nm, v in (("noise_a", noise_a), ("noise_b", noise_b), ("noise_e", noise_e)):
        t = _real_tensor(nm, v, like).to(torch.float64)
        _check_finite(nm, t, positive=True)
        out.append(t)
    return tuple(out)


# --------------------------------------------------------------------------------------------
# channel, 004 (2)-(3)
# --------------------------------------------------------------------------------------------


def _channel_parts(N: int, r_m: torch.Tensor, psi_rad: torch.Tensor, wavelength_m: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary parts of 004 (2)-(3), ``[..., N]`` each, in the dtype of ``r_m``.

    Real arithmetic only (no complex tensors), so the design space built on it exports with torch.export.
    r_n - r is formed as (x_n^2 - 2 r sin(psi) x_n) / (r_n + r): no cancellation, so the phase is exact
    to a few ulps of 2 pi (r_n - r)/lambda even in float32.
    """
    dtype, device = r_m.dtype, r_m.device
    n = torch.arange(N, dtype=dtype, device=device)
    delta = (2.0 * n - (N - 1)) / 2.0                                           # delta_n, Sec. II-B
    lam = wavelength_m[..., None]
    x = delta * (lam / 2.0)                                                      # x_n = delta_n d, d = lambda/2
    r = r_m[..., None]
    theta = torch.sin(psi_rad)[..., None]                                        # theta = sin psi
    num = x * x - 2.0 * r * theta * x
    r_n = torch.sqrt((r * r + num).clamp_min(0.0))                               # r_un below (3)
    diff = num / (r_n + r)                                                       # r_n - r
    amp = (lam / (4.0 * math.pi)) / r_n.clamp_min(torch.finfo(dtype).tiny)       # sqrt(beta_n), Sec. V-A
    phase = (2.0 * math.pi) * diff / lam
    return amp * torch.cos(phase), -amp * torch.sin(phase)                      # exp(-j 2 pi (r_n - r)/lambda)


def near_field_channel(N, r_m, psi_rad, carrier_hz) -> torch.Tensor:
    """LoS near-field channel of 004 (2)-(3), ``[..., N]`` complex128 (pinned conventions, module docstring).

    Args:
        N: number of BS antennas, an integer >= 2.
        r_m: distance(s) of the user from the array centre, metres, in (0, R_M_MAX]; float or real tensor
            ``[...]`` (not bool).
        psi_rad: angle(s) from the array broadside (y-axis), radians, |psi| <= pi/2; positive towards +x.
        carrier_hz: carrier frequency, Hz, in ``CARRIER_HZ_RANGE`` (1 MHz .. 10 THz).

    ``r_m``, ``psi_rad`` and ``carrier_hz`` must broadcast (ValueError naming their shapes). The result is on
    ``r_m``'s device. ``f = sqrt(N) c`` with c of (3), so entry n is sqrt(beta_n) exp(-j 2 pi (r_n - r)/lambda)
    and |f|^2 = sum_n beta_n.
    """
    N = _check_N(N)
    r = _real_tensor("r_m", r_m).to(torch.float64)
    psi = _real_tensor("psi_rad", psi_rad, r).to(torch.float64)
    fc = _real_tensor("carrier_hz", carrier_hz, r).to(torch.float64)
    _check_batch_shapes(r_m=("", r.shape), psi_rad=("", psi.shape), carrier_hz=("", fc.shape))
    _check_finite("r_m", r, positive=True)
    if torch.any(r > R_M_MAX):
        raise ValueError(f"r_m must be <= {R_M_MAX:g} m (the float64 limit of the model, R_M_MAX), "
                         f"got {r.max().item():g}")
    _check_finite("psi_rad", psi)
    if torch.any(psi.abs() > math.pi / 2):
        worst = psi.reshape(-1)[psi.abs().reshape(-1).argmax()].item()
        raise ValueError(f"psi_rad must lie in [-pi/2, pi/2], got {worst:.6g}")
    _check_finite("carrier_hz", fc, positive=True)
    out_of_range = (fc < CARRIER_HZ_RANGE[0]) | (fc > CARRIER_HZ_RANGE[1])
    if torch.any(out_of_range):
        raise ValueError(f"carrier_hz must lie in [{CARRIER_HZ_RANGE[0]:g}, {CARRIER_HZ_RANGE[1]:g}] Hz, "
                         f"got {fc[out_of_range].reshape(-1)[0].item():g}")
    r, psi, fc = torch.broadcast_tensors(r, psi, fc)
    lam = SPEED_OF_LIGHT_M_S / fc
    # the user must not sit on an element (r_n = 0): only possible at |psi| = pi/2, r = |x_n|
    # r_n >= r |cos psi|, so only users (almost) on the array axis can sit on an element
    edge = r * torch.cos(psi).abs() <= 1e-9 * lam
    if torch.any(edge):
        x = (torch.arange(N, dtype=torch.float64, device=r.device) - (N - 1) / 2.0) * lam[edge][..., None] / 2.0
        r_n = (r[edge][..., None] * torch.sin(psi[edge])[..., None] - x).abs()
        if torch.any(r_n <= 1e-9 * lam[edge][..., None]):
            raise ValueError("the user sits on an array element (r_n = 0): choose r_m or psi_rad off the array")
    re, im = _channel_parts(N, r, psi, lam)
    return torch.complex(re, im)


# --------------------------------------------------------------------------------------------
# SKR, 004 (13)-(23)
# --------------------------------------------------------------------------------------------


def _alpha_and_skr(sB, sE, det, noise_a, noise_b, noise_e):
    """alpha of (24)/(26) as (det G + sigma_B^2 n_e)/(sigma_E^2 + n_e), and (23) in bits."""
    alpha = (det.clamp_min(0.0) + sB * noise_e) / (sE + noise_e)
    nanb = noise_a + noise_b
    ratio = alpha * alpha / (nanb * alpha + noise_a * noise_b)
    return alpha, torch.log1p(ratio) / LN2


def skr_from_gram(G: torch.Tensor, noise_a, noise_b, noise_e, det: torch.Tensor | None = None) -> torch.Tensor:
    """004 (23) in bits from G = [f h]^H W [f h] ``[..., 2, 2]`` complex (the fast path; no checks on W).

    sigma_B^2 = G[0,0], sigma_E^2 = G[1,1], sigma_AE^2 = G[0,1] = f^H W h (14). ``det`` (optional,
    ``[...]``) is det G computed without cancellation by the caller (e.g. from the factor's minors);
    otherwise G[0,0] G[1,1] - |G[0,1]|^2 clamped at 0. Noises are the effective variances of (11).
    Everything is divided by ``noise_b`` first ((23) is invariant to a common scale). float64 result.
    """
    G = G.to(torch.complex128)
    na, nb, ne = (torch.as_tensor(v, dtype=torch.float64, device=G.device) for v in (noise_a, noise_b, noise_e))
    s = nb
    sB, sE = G[..., 0, 0].real / s, G[..., 1, 1].real / s
    x2 = G[..., 0, 1].abs() ** 2 / (s * s)
    det = sB * sE - x2 if det is None else det.to(torch.float64) / (s * s)
    return _alpha_and_skr(sB, sE, det, na / s, nb / s, ne / s)[1]


def _check_W_shape(W: torch.Tensor, N: int) -> None:
    if not isinstance(W, torch.Tensor) or W.ndim < 2 or W.shape[-1] != N or W.shape[-2] != N:
        raise ValueError(f"W must be a tensor [..., N, N] with N = {N} (the channels' length), "
                         f"got {tuple(W.shape) if isinstance(W, torch.Tensor) else type(W).__name__}")


def _check_W(W: torch.Tensor, N: int, budget_w) -> torch.Tensor:
    _check_W_shape(W, N)
    real_dtype = W.real.dtype if W.is_complex() else W.dtype
    tol = FEASIBILITY_TOL.get(real_dtype, 1e-4)
    Wc = W.to(torch.complex128)
    if not torch.all(torch.isfinite(torch.view_as_real(Wc))):
        raise ValueError("W must be finite")
    tr = torch.diagonal(Wc, dim1=-2, dim2=-1).real.sum(-1)
    scale = tr.abs().clamp_min(1e-300)
    herm = (Wc - Wc.mH).abs().amax((-1, -2))
    if torch.any(herm > tol * scale):
        raise ValueError(f"W must be Hermitian (W = E{{w w^H}}): max |W - W^H| is {herm.max().item():.3g}, "
                         f"allowed {tol:g} x Tr W")
    lam_min = torch.linalg.eigvalsh(0.5 * (Wc + Wc.mH))[..., 0]
    if torch.any(lam_min < -tol * scale):
        i = (lam_min / scale).argmin()
        raise ValueError(f"W must be positive semidefinite: smallest eigenvalue {lam_min.reshape(-1)[i].item():.6g} "
                         f"< -{tol:g} x Tr W (Tr W = {tr.reshape(-1)[i].item():.6g})")
    if budget_w is not None:
        b = _real_tensor("budget_w", budget_w, Wc).to(torch.float64)
        _check_finite("budget_w", b, positive=True)
        over = tr > (1.0 + tol) * b
        if torch.any(over):
            i = over.reshape(-1).nonzero()[0, 0]
            raise ValueError(f"W is over budget: Tr W = {torch.broadcast_to(tr, over.shape).reshape(-1)[i].item():.6g}"
                             f" > budget_w = {torch.broadcast_to(b, over.shape).reshape(-1)[i].item():.6g} "
                             f"(tolerance {tol:g} relative)")
    return Wc


def skr(W: torch.Tensor, f: torch.Tensor, h: torch.Tensor, noise_a, noise_b, noise_e, *,
        budget_w=None, check: bool = True) -> torch.Tensor:
    """004 (23): I(z_a; z_b | z_ae) in bits for pilot covariance ``W [..., N, N]`` (PSD).

    Args:
        W: pilot covariance E{w w^H}, complex Hermitian PSD ``[..., N, N]``.
        f, h: Bob's and Eve's channels ``[..., N]`` complex (:func:`near_field_channel`).
        noise_a, noise_b, noise_e: the effective estimation-noise variances of (5), (7), (11), watts:
            noise_a = (P_a / P_b) sigma_a^2, noise_b = sigma_b^2, noise_e = sigma_e^2.
        budget_w: optional P_a; then Tr W <= P_a is checked.
        check: validate W (Hermitian, PSD, budget) with the relative tolerance ``FEASIBILITY_TOL`` of its
            dtype (1e-9 for float64): smallest eigenvalue >= -tol Tr W, Tr W <= (1 + tol) budget_w.

    Returns float64 ``[...]`` bits. Evaluated through G = [f h]^H W [f h] (:func:`skr_from_gram`).
    """
    f, h = _channel_pair(f, h)
    N = f.shape[-1]
    _check_W_shape(W, N)
    na, nb, ne = _noises(noise_a, noise_b, noise_e, f.real)
    shapes = {"W": ("[..., N, N]", W.shape[:-2]), "f": ("[..., N]", f.shape[:-1]), "h": ("[..., N]", h.shape[:-1]),
              "noise_a": ("", na.shape), "noise_b": ("", nb.shape), "noise_e": ("", ne.shape)}
    if budget_w is not None:
        budget_w = _real_tensor("budget_w", budget_w, f.real)
        shapes["budget_w"] = ("", budget_w.shape)
    _check_batch_shapes(**shapes)
    Wc = _check_W(W, N, budget_w) if check else W.to(torch.complex128)
    Y = torch.stack(torch.broadcast_tensors(f, h), -1)                          # [..., N, 2]
    G = Y.mH @ Wc @ Y
    return skr_from_gram(G, na, nb, ne)


def skr_covariance_form(W: torch.Tensor, f: torch.Tensor, h: torch.Tensor, noise_a, noise_b, noise_e) -> torch.Tensor:
    """Test reference: (13) from the 3x3 covariance (17) of (z_a, z_b, z_ae) with (14), by log-determinants.

    I = log2(|K_{z_a z_ae}| |K_{z_b z_ae}| / (sigma_EE^2 |K_{z_a z_b z_ae}|)), each determinant by slogdet.
    Independent of the algebra of (18)-(23).
    """
    f, h = _check_channel("f", f), _check_channel("h", h)
    Wc = W.to(torch.complex128)
    na, nb, ne = _noises(noise_a, noise_b, noise_e, f.real)
    sB = torch.einsum("...i,...ij,...j->...", f.conj(), Wc, f)                   # f^H W f
    sE = torch.einsum("...i,...ij,...j->...", h.conj(), Wc, h)                   # h^H W h
    sAE = torch.einsum("...i,...ij,...j->...", f.conj(), Wc, h)                  # f^H W h
    sB, sE, sAE, na, nb, ne = torch.broadcast_tensors(sB, sE, sAE, na.to(sB.dtype), nb.to(sB.dtype), ne.to(sB.dtype))
    K = torch.stack([
        torch.stack([sB + na, sB, sAE], -1),
        torch.stack([sB, sB + nb, sAE], -1),
        torch.stack([sAE.conj(), sAE.conj(), sE + ne], -1),
    ], -2)                                                                          # (17)

    def ld(M):
        return torch.linalg.slogdet(M)[1]

    idx_ae, idx_be = [0, 2], [1, 2]
    K_ae = K[..., idx_ae, :][..., :, idx_ae]                                         # (15)
    K_be = K[..., idx_be, :][..., :, idx_be]                                         # (16)
    return (ld(K_ae) + ld(K_be) - torch.log(K[..., 2, 2].real) - ld(K)) / LN2


# --------------------------------------------------------------------------------------------
# designs of W
# --------------------------------------------------------------------------------------------


def _power(P_a, like: torch.Tensor) -> torch.Tensor:
    P = _real_tensor("P_a", P_a, like).to(torch.float64)
    _check_finite("P_a", P, positive=True)
    return P


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(1e-300)


def mrc_design(f: torch.Tensor, P_a) -> dict[str, torch.Tensor]:
    """MRC with a random scalar pilot on Bob's beam (docs/architecture.md section 1: 004's deterministic w
    gives no key): W = P_a f f^H / |f|^2, i.e. SVD with P_S = P_a. Returns the factor form
    ``{"F": [..., N, 1]}``, W = F F^H."""
    f = _check_channel("f", f)
    P = _power(P_a, f.real)
    _check_batch_shapes(f=("[..., N]", f.shape[:-1]), P_a=("", P.shape))
    return {"F": (torch.sqrt(P)[..., None] * _unit(f))[..., None]}


def svd_design(f: torch.Tensor, P_a, P_S) -> dict[str, torch.Tensor]:
    """004 Sec. IV: W = P_S u_s u_s^H + P_N/(N-1) U_n U_n^H, u_s = f/|f|, P_N = P_a - P_S.

    Returns ``{"F": [..., N, 1] = sqrt(P_S) u_s, "ortho_w": P_N [...], "ortho_to": u_s [..., N]}``: the
    compact form W = F F^H + ortho_w/(N-1) (I - u u^H) understood by :func:`design_gram`. SVD w/o PA
    is P_S = P_a/2 (Sec. V-B 2)), SVD w/ PA takes P_S from :func:`dinkelbach_power_split`.
    """
    f = _check_channel("f", f)
    P = _power(P_a, f.real)
    P_S = _real_tensor("P_S", P_S, f.real).to(torch.float64)
    _check_batch_shapes(f=("[..., N]", f.shape[:-1]), P_a=("", P.shape), P_S=("", P_S.shape))
    _check_finite("P_S", P_S, nonneg=True)
    if torch.any(P_S > P * (1 + 1e-12)):
        raise ValueError(f"P_S must lie in [0, P_a], got P_S/P_a up to {(P_S / P).max().item():.6g}")
    u = _unit(f)
    P_S, P = torch.broadcast_tensors(P_S, P)
    return {"F": (torch.sqrt(P_S)[..., None] * u)[..., None], "ortho_w": (P - P_S).clamp_min(0.0), "ortho_to": u}


def _beam_inputs(f, h, P_a, noise_e) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Checked (f, h, P_a, noise_e) of :func:`optimal_alpha`, :func:`optimal_beam`, :func:`optimal_design`."""
    f, h = _channel_pair(f, h)
    P = _power(P_a, f.real)
    ne = _real_tensor("noise_e", noise_e, f.real).to(torch.float64)
    _check_finite("noise_e", ne, positive=True)
    _check_batch_shapes(f=("[..., N]", f.shape[:-1]), h=("[..., N]", h.shape[:-1]), P_a=("", P.shape),
                        noise_e=("", ne.shape))
    return f, h, P, ne


def optimal_alpha(f: torch.Tensor, h: torch.Tensor, P_a, noise_e) -> torch.Tensor:
    """alpha* = P_a |f|^2 - P_a^2 |h^H f|^2 / (P_a |h|^2 + noise_e), the maximum of (26) (see optimal_design)."""
    f, h, P, ne = _beam_inputs(f, h, P_a, noise_e)
    f2, h2 = (f.abs() ** 2).sum(-1), (h.abs() ** 2).sum(-1)
    hf2 = (h.conj() * f).sum(-1).abs() ** 2
    return P * f2 - P * P * hf2 / (P * h2 + ne)


def optimal_beam(f: torch.Tensor, h: torch.Tensor, P_a, noise_e) -> torch.Tensor:
    """The unit beam v/|v| of :func:`optimal_design`, v = f - t* h, t* = P_a h^H f/(P_a |h|^2 + noise_e).
    ``[..., N]`` complex128."""
    f, h, P, ne = _beam_inputs(f, h, P_a, noise_e)
    h2 = (h.abs() ** 2).sum(-1)
    t = P * (h.conj() * f).sum(-1) / (P * h2 + ne)
    return _unit(f - t[..., None] * h)


def optimal_design(f: torch.Tensor, h: torch.Tensor, P_a, noise_e) -> torch.Tensor:
    """The optimum of (23) over PSD W with Tr W <= P_a: W* = P_a v v^H / |v|^2, ``[..., N, N]`` complex128.

    v = f - t* h,  t* = P_a h^H f / (P_a |h|^2 + noise_e),
    alpha(W*) = alpha* = P_a |f|^2 - P_a^2 |h^H f|^2 / (P_a |h|^2 + noise_e).

    Derivation. (23) is increasing in alpha >= 0 ((25): df/dalpha > 0), so maximise alpha of (24)/(26).
    1. alpha is concave in W (004 calls (P1) non-concave; docs/architecture.md section 1). For any complex t,
       g(W, t) = (f - t h)^H W (f - t h) + |t|^2 noise_e
               = f^H W f - 2 Re(t f^H W h) + |t|^2 (h^H W h + noise_e),
       a convex quadratic in t minimised at t(W) = h^H W f / (h^H W h + noise_e) with minimum
       f^H W f - |f^H W h|^2 / (h^H W h + noise_e) = alpha(W). So alpha(W) = min_t g(W, t) is a pointwise
       minimum of functions affine in W: concave.
    2. Saddle point. g is affine in W on the compact convex set {W >= 0, Tr W <= P_a} and convex in t,
       so max_W min_t g = min_t max_W g (Sion). For fixed t, max_W g = P_a |f - t h|^2 + |t|^2 noise_e
       (all power on the top eigenvector of (f - t h)(f - t h)^H, which is the vector itself). This is a
       strictly convex quadratic in t (noise_e > 0) minimised at t* = P_a h^H f / (P_a |h|^2 + noise_e),
       with value alpha* = P_a |f|^2 - P_a^2 |h^H f|^2 / (P_a |h|^2 + noise_e) (substitute t*).
    3. The maximiser. A saddle point (W°, t*) exists (the t-problem is coercive, t* is its unique
       minimiser), and W° maximises g(., t*), whose unique maximiser over the set is P_a v v^H/|v|^2 with
       v = f - t* h (v != 0 unless f = 0: f = t* h would need t* = c for f = c h, but
       t* = c P_a |h|^2/(P_a |h|^2 + noise_e) != c). Hence W* = P_a v v^H/|v|^2 and alpha(W*) = alpha*.
    Remarks. v = (1 - kappa) f + kappa p with p = f - (h^H f/|h|^2) h (Bob's channel with Eve's direction
    projected out: the beam Eve cannot hear) and kappa = g_e/(1 + g_e), g_e = P_a |h|^2/noise_e Eve's
    array SNR: the optimum blends MRC and zero-forcing on Eve by Eve's SNR alone. alpha* grows with P_a,
    so the whole budget is used. With Eve on Bob (h = f) v is along f and every design in this module
    gives alpha = s noise_e/(s + noise_e), s = P |f|^2, i.e. log2(4/3) bits at equal noises and high SNR.
    Tests check the optimum against projected gradient ascent and random feasible W (independent).
    """
    v = optimal_beam(f, h, P_a, noise_e)
    P = _power(P_a, v.real)
    return P[..., None, None] * (v[..., :, None] * v[..., None, :].conj())


def dinkelbach_power_split(f: torch.Tensor, h: torch.Tensor, P_a, noise_a, noise_b, noise_e, *,
                           tol: float = 1e-12, max_iter: int = 20, unchecked_line4: bool = False,
                           return_iterations: bool = False):
    """004 Alg. 1: the power P_S in [0, P_a] on Bob's beam for the SVD design (P_N = P_a - P_S), by Dinkelbach.

    With u_s = f/|f|, a = |u_s^H h|^2, c = (|h|^2 - a)/(N - 1) (Eve's gain on the white noise of
    C = U_n U_n^H/(N-1)), (P2) on W = P_S B_bar + (P_a - P_S) C is min -alpha = (m1 P_S^2 + m2 P_S)/(m3 P_S + m4),
    (28)-(29) with the corrected numerator Tr(B_bar A B) (docs/architecture.md section 1), i.e.
        m1 = c |f|^2,  m2 = -(P_a c + noise_e) |f|^2,  m3 = a - c,  m4 = P_a c + noise_e
    (Tr(B_bar A B) = |f|^2 a and Tr(C A B) = 0). Solved in x = P_S/P_a, divided by noise_e, so the
    denominator is >= 1 on [0, 1] and the iteration is well posed.

    Alg. 1 with fixes: P_{S,0} = P_a (line 1); beta_t = N(P_{S,t-1})/D(P_{S,t-1}) (line 3); line 4 takes the
    best of y(0), y(P_a) and the stationary point of the quadratic y *only if it lies inside [0, P_a]* (as
    printed, line 4 can leave the budget; ``unchecked_line4=True`` reproduces that, for tests only); a
    vanishing m1 (Eve without gain off Bob's beam, or h = 0) drops the stationary point; stop when
    |N(x_t) - beta_t D(x_t)| <= tol (|N(x_t)| + tiny) (line 2, made relative) or after ``max_iter``
    iterations. f = 0 (no key possible) returns P_a. noise_a and noise_b do not move the maximiser
    ((23) is increasing in alpha) but are validated for a uniform signature.

    f and h must have the same length N >= 2 (004's array; with N = 1 the null space U_n does not exist).
    Returns P_S ``[...]`` float64 (and the iterations used per draw if ``return_iterations``).
    """
    f, h = _channel_pair(f, h)
    check_positive_int("max_iter", max_iter)
    if not (_is_real_scalar(tol) and math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a finite real number > 0, got {_short(tol)}")
    tol = float(tol)                                                             # numpy scalars: plain float
    P = _power(P_a, f.real)
    na, nb, ne = _noises(noise_a, noise_b, noise_e, f.real)
    _check_batch_shapes(f=("[..., N]", f.shape[:-1]), h=("[..., N]", h.shape[:-1]), P_a=("", P.shape),
                        noise_a=("", na.shape), noise_b=("", nb.shape), noise_e=("", ne.shape))
    N = f.shape[-1]
    f2 = (f.abs() ** 2).sum(-1)
    h2 = (h.abs() ** 2).sum(-1)
    a = (h.conj() * f).sum(-1).abs() ** 2 / f2.clamp_min(1e-300)
    c = (h2 - a).clamp_min(0.0) / (N - 1)
    Fs, A, C = P * f2 / ne, P * a / ne, P * c / ne                              # noise_e-normalised, x = P_S/P_a
    Fs, A, C = torch.broadcast_tensors(Fs, A, C)
    m1, m2, m3, m4 = C * Fs, -(C + 1.0) * Fs, A - C, C + 1.0                   # (29) in x, / noise_e

    def num(x):
        return m1 * x * x + m2 * x

    def den(x):
        return m3 * x + m4

    x = torch.ones_like(Fs)                                                      # line 1
    iters = torch.zeros(Fs.shape, dtype=torch.int64, device=Fs.device)
    done = Fs <= 0                                                               # f = 0: nothing to optimise
    has_stat = m1 > 1e-300 * (m2.abs() + 1.0)
    for _ in range(int(max_iter)):
        beta = num(x) / den(x)                                                   # line 3
        lin = m2 - beta * m3
        x_stat = torch.where(has_stat, -lin / (2.0 * torch.where(has_stat, m1, torch.ones_like(m1))),
                             torch.zeros_like(m1))
        if not unchecked_line4:
            x_stat = x_stat.clamp(0.0, 1.0)                                      # stationary point only inside [0, 1]

        def y(z, beta=beta, lin=lin):
            return m1 * z * z + lin * z - beta * m4

        cands = torch.stack([torch.zeros_like(x), torch.ones_like(x), x_stat], -1)   # line 4
        vals = torch.stack([y(cands[..., 0]), y(cands[..., 1]),
                            torch.where(has_stat, y(x_stat), torch.full_like(x, float("inf")))], -1)
        x_new = cands.gather(-1, vals.argmin(-1, keepdim=True)).squeeze(-1)
        x = torch.where(done, x, x_new)
        iters = iters + (~done).to(torch.int64)
        gap = (num(x) - beta * den(x)).abs()                                     # line 2
        done = done | (gap <= tol * (num(x).abs() + 1e-300))
        if bool(done.all()):
            break
    P_S = x * P
    return (P_S, iters) if return_iterations else P_S


# --------------------------------------------------------------------------------------------
# compact design format: W = F F^H (+ white power orthogonal to a beam)
# --------------------------------------------------------------------------------------------


def _as_complex(t: torch.Tensor) -> torch.Tensor:
    """``[..., 2]`` real (real, imag last) -> complex128; complex input passes through."""
    if t.is_complex():
        return t.to(torch.complex128)
    return torch.view_as_complex(t.to(torch.float64).contiguous())


def design_gram(design: dict[str, torch.Tensor], f: torch.Tensor, h: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """G = [f h]^H W [f h] ``[..., 2, 2]``, det G ``[...]`` (cancellation-free) and Tr W ``[...]`` of a design.

    ``design``: ``F [..., N, r]`` complex or ``[..., N, r, 2]`` real (W = F F^H); optionally
    ``ortho_w [...]`` and ``ortho_to [..., N]`` (complex or ``[..., N, 2]``, unit norm): white power
    ortho_w spread evenly over the N - 1 dimensions orthogonal to ``ortho_to`` (004's C of Sec. IV).
    det G of F F^H is the Lagrange sum of squared 2x2 minors of X = F^H [f h] (>= 0, exactly 0 for r = 1).
    """
    F = _as_complex(design["F"])
    Y = torch.stack(torch.broadcast_tensors(f, h), -1).to(torch.complex128)  # [..., N, 2]
    X = F.mH @ Y                                                                   # [..., r, 2]
    G = X.mH @ X
    minors = X[..., :, None, 0] * X[..., None, :, 1] - X[..., None, :, 0] * X[..., :, None, 1]
    det = (minors.abs() ** 2).sum((-1, -2)) / 2.0                                 # sum over i < j
    tr = (F.abs() ** 2).sum((-1, -2))
    if "ortho_w" in design:
        w = design["ortho_w"].to(torch.float64)
        u = _as_complex(design["ortho_to"])
        N = F.shape[-2]
        Z = Y - u[..., :, None] * (u.conj()[..., :, None] * Y).sum(-2, keepdim=True)   # (I - u u^H) Y
        Gw = (w / (N - 1))[..., None, None] * (Z.mH @ Z)
        det = det + G[..., 0, 0].real * Gw[..., 1, 1].real + Gw[..., 0, 0].real * G[..., 1, 1].real \
            - 2.0 * (G[..., 0, 1] * Gw[..., 0, 1].conj()).real + (Gw[..., 0, 0].real * Gw[..., 1, 1].real
                                                                    - Gw[..., 0, 1].abs() ** 2)
        G = G + Gw
        tr = tr + w
    return G, det, tr


def design_matrix(design: dict[str, torch.Tensor]) -> torch.Tensor:
    """The full W ``[..., N, N]`` complex128 of a compact design (tests and small N only)."""
    F = _as_complex(design["F"])
    W = F @ F.mH
    if "ortho_w" in design:
        u = _as_complex(design["ortho_to"])
        N = F.shape[-2]
        eye = torch.eye(N, dtype=W.dtype, device=W.device)
        P_perp = eye - u[..., :, None] * u.conj()[..., None, :]
        W = W + (design["ortho_w"].to(torch.float64) / (N - 1))[..., None, None] * P_perp
    return W


# --------------------------------------------------------------------------------------------
# probing model, Sec. II-III, for Monte Carlo
# --------------------------------------------------------------------------------------------


def _cn(shape, generator: torch.Generator, device=None) -> torch.Tensor:
    re = torch.randn(*shape, 2, generator=generator, dtype=torch.float64, device=device) / math.sqrt(2.0)
    return torch.view_as_complex(re)


def probe(W: torch.Tensor, f: torch.Tensor, h: torch.Tensor, sigma_a2_w: float, sigma_b2_w: float,
          sigma_e2_w: float, P_b_w: float, rounds: int, generator: torch.Generator,
          literal_uplink: bool = True) -> dict[str, torch.Tensor]:
    """Simulate ``rounds`` probing rounds of Sec. III for one instance (``W [N, N]``, ``f``, ``h`` ``[N]``).

    Each round: Alice draws w = W^(1/2) s, s ~ CN(0, I) (pilot covariance W); Bob gets
    z_b = f^H w + n_b, n_b ~ CN(0, sigma_b^2) (5); Eve z_ae = h^H w + n_e, n_e ~ CN(0, sigma_e^2) (7);
    Alice estimates f from Bob's uplink with power P_b, z_a_vec = f + n_hat_a, n_hat_a ~ CN(0, sigma_a^2/P_b I)
    (9), and forms z_a = z_a_vec^H w = f^H w + n_hat_a^H w (10)-(11). ``literal_uplink=True`` keeps that
    product noise (variance sigma_a^2 |w|^2 / P_b, i.e. (11)'s effective noise_a = sigma_a^2 Tr W / P_b on
    average, not Gaussian jointly); ``False`` draws the Gaussian of (11) with that variance. Each round
    uses a fresh uplink (Sec. III: the probing steps alternate). Returns ``{"z_a", "z_b", "z_ae"}``
    ``[rounds]`` complex128.
    """
    rounds = check_positive_int("rounds", rounds)
    Wc = W.to(torch.complex128)
    N = Wc.shape[-1]
    lam, U = torch.linalg.eigh(0.5 * (Wc + Wc.mH))
    root = U * lam.clamp_min(0.0).sqrt()[None, :]                                   # W^(1/2) up to a unitary
    w = _cn((rounds, N), generator) @ root.T                                        # [rounds, N], E w w^H = W
    f, h = f.to(torch.complex128), h.to(torch.complex128)
    z_b = w @ f.conj() + math.sqrt(sigma_b2_w) * _cn((rounds,), generator)
    z_ae = w @ h.conj() + math.sqrt(sigma_e2_w) * _cn((rounds,), generator)
    if literal_uplink:
        n_hat = math.sqrt(sigma_a2_w / P_b_w) * _cn((rounds, N), generator)
        z_a = w @ f.conj() + (n_hat.conj() * w).sum(-1)
    else:
        tr = float(torch.diagonal(Wc).real.sum())
        z_a = w @ f.conj() + math.sqrt(sigma_a2_w * tr / P_b_w) * _cn((rounds,), generator)
    return {"z_a": z_a, "z_b": z_b, "z_ae": z_ae}


def conditional_mi_bits_from_samples(z_a: torch.Tensor, z_b: torch.Tensor, z_e: torch.Tensor) -> torch.Tensor:
    """Gaussian I(z_a; z_b | z_e) in bits from the sample covariance of zero-mean samples ``[rounds]`` each,
    by (13) with log-determinants."""
    Z = torch.stack([z_a, z_b, z_e], -1)
    C = Z.T @ Z.conj() / Z.shape[0]

    def ld(idx):
        return torch.linalg.slogdet(C[idx][:, idx])[1]

    return (ld([0, 2]) + ld([1, 2]) - torch.log(C[2, 2].real) - ld([0, 1, 2])) / LN2


# --------------------------------------------------------------------------------------------
# the scenario
# --------------------------------------------------------------------------------------------


FRAMES = ("plain", "snr_scaled")


def _range_pair(name: str, rng, **limits) -> tuple:
    """A [low, high] pair checked by ``_check_range`` (numpy real scalars accepted as floats, bools refused)."""
    if isinstance(rng, str | bytes | torch.Tensor) or not hasattr(rng, "__len__") or len(rng) != 2:
        raise ValueError(f"{name} must be two real numbers [low, high], got {_short(rng)}")
    vals = [float(v) if isinstance(v, np.integer | np.floating) else v for v in rng]
    _check_range(name, *vals, **limits)
    return tuple(vals)


class NearFieldDesignSpace(nn.Module):
    """Raw net outputs -> a feasible W = F F^H, a 2x2 PSD matrix in span{f, h}, built inside the graph.

    From the raw features x (``r_b_m, psi_b_rad, r_e_m, psi_e_rad, P_t_dbm``) the module computes Bob's
    and Eve's channels f, h (004 (2)-(3), real arithmetic, float64), Eve's array SNR
    g_e = P_a |h|^2 / sigma_e^2 and a frame of span{f, h}:
        p = f - (h^H f / |h|^2) h          (Bob's channel with Eve's direction projected out: Eve hears nothing),
        ``frame="plain"`` (default):  b1 = f / |f|,       b2 = p / |f|;
        ``frame="snr_scaled"``:       b1 = f / (g_e |f|), b2 = p / |f|.
    The net's head ``F`` (8 raw numbers) is a complex 2x2 matrix L (real parts row-major, then imaginary
    parts); the factor is F = sqrt(P_a) [b1 b2] L / ||[b1 b2] L||_F (so Tr W = P_a exactly: alpha* grows
    with P_a), returned as ``F [n, N, 2, 2]`` float64 (real, imag last). Every PSD W in span{f, h} with
    Tr W = P_a is reachable when h is not parallel to f; with Eve exactly on Bob p = 0 and W falls back to
    Bob's beam, the optimum there.
    Why these frames: the optimum is v = (1 - kappa) f + kappa p, kappa = g_e/(1 + g_e) (see
    :func:`optimal_design`). In the plain frame that is L = [[1 - kappa, 0], [kappa, 0]]: the MRC coefficient
    1 - kappa ~ 1/g_e is 1e-4..1e-9 over the training distribution and matters when Eve is close to Bob
    (|p| small): the net has to learn it from the features (an untrained net reaches 82-89 % of the optimum
    here, a trained one 99.9 %). Scaling b1 by 1/g_e makes the optimum L = [[1, 0], [1, 0]] for every
    instance and almost every L near-optimal (b1 is then negligible unless L's second row vanishes): an
    untrained net already reaches 99.99 % of the optimum in that frame, so it shows the physics, not
    learning. In either frame the oscillating phase of h^H f (Eve's sidelobes) is absorbed by p, which a
    net could not learn from raw positions.
    """

    def __init__(self, N: int, carrier_hz: float, feature_index: dict[str, int], sigma_e_dbm: float = -105.0,
                 frame: str = "plain"):
        super().__init__()
        self.N = _check_N(N)
        self.carrier_hz = check_real("carrier_hz", carrier_hz, low=CARRIER_HZ_RANGE[0], high=CARRIER_HZ_RANGE[1])
        self.wavelength_m = SPEED_OF_LIGHT_M_S / self.carrier_hz
        if frame not in FRAMES:
            raise ValueError(f"frame must be one of {FRAMES}, got {frame!r}")
        self.frame = frame
        sigma_e_dbm = check_real("sigma_e_dbm", sigma_e_dbm, low=NOISE_DBM_LIMITS[0], high=NOISE_DBM_LIMITS[1])
        self.sigma_e_w = 10.0 ** ((sigma_e_dbm - 30.0) / 10.0)
        self.idx = dict(feature_index)
        self.heads = {"F": 8}   # raw head of output F: the 8 real numbers of the complex 2x2 L

    def channels(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(f_re, f_im, h_re, h_im) ``[n, N]`` float64 from raw features ``x [n, 5]``."""
        x = x.to(torch.float64)
        lam = torch.full_like(x[..., 0], self.wavelength_m)
        fr, fi = _channel_parts(self.N, x[..., self.idx["r_b_m"]], x[..., self.idx["psi_b_rad"]], lam)
        hr, hi = _channel_parts(self.N, x[..., self.idx["r_e_m"]], x[..., self.idx["psi_e_rad"]], lam)
        return fr, fi, hr, hi

    def forward(self, raw: dict[str, torch.Tensor], x: torch.Tensor) -> dict[str, torch.Tensor]:
        fr, fi, hr, hi = self.channels(x)
        P_a = torch.pow(10.0, (x[..., self.idx["P_t_dbm"]].to(torch.float64) - 30.0) / 10.0)
        f_norm = torch.sqrt((fr * fr + fi * fi).sum(-1, keepdim=True))
        h2 = (hr * hr + hi * hi).sum(-1, keepdim=True)
        # c = h^H f / |h|^2 (real arithmetic): (hr - j hi)(fr + j fi)
        c_re = (hr * fr + hi * fi).sum(-1, keepdim=True) / h2
        c_im = (hr * fi - hi * fr).sum(-1, keepdim=True) / h2
        b1r, b1i = fr / f_norm, fi / f_norm
        if self.frame == "snr_scaled":
            g_e = (P_a[..., None] * h2 / self.sigma_e_w).clamp_min(1e-30)            # Eve's array SNR
            b1r, b1i = b1r / g_e, b1i / g_e
        b2r = (fr - (c_re * hr - c_im * hi)) / f_norm                             # p = f - c h
        b2i = (fi - (c_re * hi + c_im * hr)) / f_norm
        L = raw["F"].to(torch.float64)
        Lr, Li = L[..., 0:4].reshape(*L.shape[:-1], 2, 2), L[..., 4:8].reshape(*L.shape[:-1], 2, 2)
        # F = [b1 b2] L: F[:, k] = b1 L[0, k] + b2 L[1, k]
        Fr = b1r[..., :, None] * Lr[..., None, 0, :] - b1i[..., :, None] * Li[..., None, 0, :] \
            + b2r[..., :, None] * Lr[..., None, 1, :] - b2i[..., :, None] * Li[..., None, 1, :]
        Fi = b1r[..., :, None] * Li[..., None, 0, :] + b1i[..., :, None] * Lr[..., None, 0, :] \
            + b2r[..., :, None] * Li[..., None, 1, :] + b2i[..., :, None] * Lr[..., None, 1, :]
        fro = torch.sqrt((Fr * Fr + Fi * Fi).sum((-1, -2))).clamp_min(1e-150)
        s = (torch.sqrt(P_a) / fro)[..., None, None]
        return {"F": torch.stack([Fr * s, Fi * s], -1)}


class NearFieldScenario(Scenario):
    """004's near-field XL-MIMO key generation as a scenario (docs/architecture.md section 3).

    Features (raw, physical units): ``r_b_m, psi_b_rad, r_e_m, psi_e_rad, P_t_dbm`` (P_a = P_b = P_t, Sec. V-A).
    Training distribution: Bob uniform in ``r_m_range`` x ``psi_rad_range``; P_t uniform in ``P_t_dbm_range``
    (inside ``P_T_DBM_LIMITS`` = [-200, 100] dBm);
    Eve from a mixture, weights ``eve_mixture`` = (independent, same angle, same range, close):
      independent: uniform like Bob;  same angle: r_e uniform, psi_e = psi_b + U(-d_psi, d_psi) (Fig. 4);
      same range: r_e = r_b + U(-d_r, d_r), psi_e uniform (Fig. 5);  close: r_e = r_b + U(-d_r, d_r),
      psi_e = psi_b + U(-d_psi, d_psi) (Eve close to Bob, where designs differ most), with d_r = ``close_r_m``
      (0.5 m) and d_psi = ``close_psi_rad`` (0.01 rad), which also define the ``eve_close`` subset.
    Eve's draws are clipped to the ranges. Noise powers ``sigma_a_dbm``, ``sigma_b_dbm``, ``sigma_e_dbm``
    (-105 dBm each); effective noises (11): noise_a = (P_a/P_b) sigma_a^2 = sigma_a^2, noise_b, noise_e.
    Design: ``F [n, N, 2, 2]`` (W = F F^H), see :class:`NearFieldDesignSpace` (``design_frame``).
    """

    FEATURES = ("r_b_m", "psi_b_rad", "r_e_m", "psi_e_rad", "P_t_dbm")

    def __init__(
        self,
        N: int = 256,
        carrier_hz: float = 30e9,
        r_m_range: tuple[float, float] = (5.0, 25.0),
        psi_rad_range: tuple[float, float] = (-1.5, 1.5),
        P_t_dbm_range: tuple[float, float] = (0.0, 40.0),
        sigma_a_dbm: float = -105.0,
        sigma_b_dbm: float = -105.0,
        sigma_e_dbm: float = -105.0,
        eve_mixture: tuple[float, float, float, float] = (0.25, 0.25, 0.25, 0.25),
        close_r_m: float = 0.5,
        close_psi_rad: float = 0.01,
        design_frame: str = "plain",
    ):
        self.N = _check_N(N)
        if self.N > N_MAX_SCENARIO:
            raise ValueError(f"N (number of BS antennas) must be <= {N_MAX_SCENARIO} for the scenario, got {self.N} "
                             "(004 uses 256): every draw carries two N-element channels through batches of "
                             "thousands of draws")
        self.carrier_hz = check_real("carrier_hz", carrier_hz, low=CARRIER_HZ_RANGE[0], high=CARRIER_HZ_RANGE[1])
        r_m_range = _range_pair("r_m_range", r_m_range)
        if not r_m_range[0] > 0:
            raise ValueError(f"r_m_range must start at > 0 m, got {r_m_range[0]}")
        psi_rad_range = _range_pair("psi_rad_range", psi_rad_range, min_allowed=-math.pi / 2,
                                    max_allowed=math.pi / 2)
        # bounded to P_T_DBM_LIMITS (10 MW at most, see there): beyond, P_a = 10^((P - 30)/10) W overflows
        P_t_dbm_range = _range_pair("P_t_dbm_range", P_t_dbm_range, min_allowed=P_T_DBM_LIMITS[0],
                                    max_allowed=P_T_DBM_LIMITS[1])
        self.sigma_dbm = tuple(check_real(nm, v, low=NOISE_DBM_LIMITS[0], high=NOISE_DBM_LIMITS[1]) for nm, v in
                               (("sigma_a_dbm", sigma_a_dbm), ("sigma_b_dbm", sigma_b_dbm),
                                ("sigma_e_dbm", sigma_e_dbm)))
        mix = [check_real(f"eve_mixture[{i}]", v, low=0.0) for i, v in enumerate(eve_mixture)]
        if len(mix) != 4 or sum(mix) <= 0:
            raise ValueError(f"eve_mixture must be 4 weights >= 0 with a positive sum, got {list(eve_mixture)}")
        self.eve_mixture = tuple(m / sum(mix) for m in mix)
        self.close_r_m = check_real("close_r_m", close_r_m, low=0.0, low_inclusive=False)
        self.close_psi_rad = check_real("close_psi_rad", close_psi_rad, low=0.0, low_inclusive=False)
        if design_frame not in FRAMES:
            raise ValueError(f"design_frame must be one of {FRAMES}, got {design_frame!r}")
        self.design_frame = design_frame
        self.r_m_range = tuple(float(v) for v in r_m_range)
        self.psi_rad_range = tuple(float(v) for v in psi_rad_range)
        self.P_t_dbm_range = tuple(float(v) for v in P_t_dbm_range)
        self.name = "nearfield"
        self.feature_names = self.FEATURES
        self.feature_units = ("m", "rad", "m", "rad", "dBm")

    @classmethod
    def from_description(cls, desc: dict[str, Any]) -> NearFieldScenario:
        """The scenario a checkpoint or an exported file was made with (inverse of :meth:`describe`)."""
        if desc.get("scenario") != "nearfield":
            raise ValueError(f"not a near-field scenario description: scenario = {desc.get('scenario')!r}")
        keys = ("N", "carrier_hz", "r_m_range", "psi_rad_range", "P_t_dbm_range", "sigma_a_dbm", "sigma_b_dbm",
                "sigma_e_dbm", "eve_mixture", "close_r_m", "close_psi_rad", "design_frame")
        return cls(**{k: tuple(desc[k]) if isinstance(desc[k], list) else desc[k] for k in keys})

    # -- description ---------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {
            "scenario": self.name, "paper": "004", "N": self.N, "carrier_hz": self.carrier_hz,
            "feature_names": list(self.feature_names), "feature_units": list(self.feature_units),
            "r_m_range": list(self.r_m_range), "psi_rad_range": list(self.psi_rad_range),
            "P_t_dbm_range": list(self.P_t_dbm_range), "sigma_a_dbm": self.sigma_dbm[0],
            "sigma_b_dbm": self.sigma_dbm[1], "sigma_e_dbm": self.sigma_dbm[2],
            "eve_mixture": list(self.eve_mixture), "close_r_m": self.close_r_m, "close_psi_rad": self.close_psi_rad,
            "design_frame": self.design_frame,
            "outputs": {"F": [self.N, 2, 2]},
            "design": "W = F F^H, F [n, N, 2] complex (real, imag last); Tr W = P_a = 10^((P_t_dbm - 30)/10) W",
        }

    # -- sampling ------------------------------------------------------------------------------
    def _u(self, n, lo, hi, g):
        return lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)

    def sample(self, n: int, generator: torch.Generator) -> Batch:
        if (isinstance(n, bool) or not isinstance(n, numbers.Real) or not math.isfinite(n) or int(n) != n
                or n < 0):
            raise ValueError(f"number of draws must be an integer >= 0, got {n!r}")
        n = int(n)
        (r0, r1), (p0, p1) = self.r_m_range, self.psi_rad_range
        g = check_generator(generator)
        r_b, psi_b = self._u(n, r0, r1, g), self._u(n, p0, p1, g)
        P_t = self._u(n, *self.P_t_dbm_range, g)
        comp = torch.multinomial(torch.tensor(self.eve_mixture, dtype=torch.float64), max(n, 1), replacement=True,
                                 generator=g)[:n]
        r_ind, psi_ind = self._u(n, r0, r1, g), self._u(n, p0, p1, g)
        dr = self._u(n, -self.close_r_m, self.close_r_m, g)
        dpsi = self._u(n, -self.close_psi_rad, self.close_psi_rad, g)
        same_angle = (comp == 1) | (comp == 3)
        same_range = (comp == 2) | (comp == 3)
        r_e = torch.where(same_range, r_b + dr, r_ind).clamp(r0, r1)
        psi_e = torch.where(same_angle, psi_b + dpsi, psi_ind).clamp(p0, p1)
        return {"r_b_m": r_b, "psi_b_rad": psi_b, "r_e_m": r_e, "psi_e_rad": psi_e, "P_t_dbm": P_t}

    def point(self, n: int = 1, **values) -> Batch:
        """``n`` copies of 004 Fig. 3's setting (r_b 12.2 m, r_e 12 m, psi 0.2 rad both, P_t 30 dBm);
        any field overridable by a float or a tensor of length n (sweeps)."""
        n = check_positive_int("n", n)
        base = {"r_b_m": 12.2, "psi_b_rad": 0.2, "r_e_m": 12.0, "psi_e_rad": 0.2, "P_t_dbm": 30.0}
        for k in values:
            if k not in base:
                raise ValueError(f"unknown point field {k!r}; allowed: {sorted(base)}")
        base.update(values)
        return {k: torch.as_tensor(v, dtype=torch.float64).expand(n).clone() for k, v in base.items()}

    def features(self, batch: Batch) -> torch.Tensor:
        """Raw features ``[n, 5]`` float64 in ``FEATURES`` order; the batch is checked as :meth:`skr` checks it
        (every field, real, distances in (0, R_M_MAX] m, angles in [-pi/2, pi/2] rad, P_t_dbm in
        ``P_T_DBM_LIMITS``), so that degrees or a missing field are named here, not met by the net."""
        self._check_batch(batch)
        cols = {k: _real_tensor(k, batch[k]).to(torch.float64) for k in self.FEATURES}
        for k in ("r_b_m", "r_e_m"):
            if not torch.all((cols[k] > 0) & (cols[k] <= R_M_MAX)):      # one reduction; NaN fails too
                _check_finite(k, cols[k], positive=True)
                raise ValueError(f"{k} must lie in (0, {R_M_MAX:g}] m, got max {cols[k].max().item():.6g}")
        for k in ("psi_b_rad", "psi_e_rad"):
            if not torch.all(cols[k].abs() <= math.pi / 2):
                _check_finite(k, cols[k])
                raise ValueError(f"{k} must lie in [-pi/2, pi/2] rad (radians, not degrees), got "
                                 f"{cols[k][cols[k].abs() > math.pi / 2].reshape(-1)[0].item():.6g}")
        self.P_a_w(cols)
        return torch.stack(torch.broadcast_tensors(*[cols[k] for k in self.FEATURES]), -1)

    def feature_bounds(self) -> tuple[list[float], list[float]]:
        (r0, r1), (p0, p1), (q0, q1) = self.r_m_range, self.psi_rad_range, self.P_t_dbm_range
        return [r0, p0, r0, p0, q0], [r1, p1, r1, p1, q1]

    def design_space(self) -> NearFieldDesignSpace:
        return NearFieldDesignSpace(self.N, self.carrier_hz, {k: i for i, k in enumerate(self.FEATURES)},
                                    self.sigma_dbm[2], self.design_frame)

    # -- physics -------------------------------------------------------------------------------
    def channels(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(f, h) ``[n, N]`` complex128."""
        self._check_batch(batch, self.FEATURES[:4])
        f = near_field_channel(self.N, batch["r_b_m"], batch["psi_b_rad"], self.carrier_hz)
        h = near_field_channel(self.N, batch["r_e_m"], batch["psi_e_rad"], self.carrier_hz)
        return f, h

    def P_a_w(self, batch: Batch) -> torch.Tensor:
        """P_a = P_b = 10^((P_t_dbm - 30)/10) W; ValueError naming P_t_dbm if it is not real, not finite or
        outside ``P_T_DBM_LIMITS`` (where P_a would overflow to inf or underflow to 0)."""
        self._check_batch(batch, ("P_t_dbm",))
        P_t = _real_tensor("P_t_dbm", batch["P_t_dbm"]).to(torch.float64)
        lo, hi = P_T_DBM_LIMITS
        if not torch.all((P_t >= lo) & (P_t <= hi)):                              # one reduction; NaN fails too
            _check_finite("P_t_dbm", P_t)
            bad = P_t[(P_t < lo) | (P_t > hi)].reshape(-1)[0].item()
            raise ValueError(f"P_t_dbm must lie in [{lo:g}, {hi:g}] dBm (P_T_DBM_LIMITS), got {bad:g}")
        return torch.pow(10.0, (P_t - 30.0) / 10.0)

    def noises_w(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Effective noise variances of (11): (P_a/P_b) sigma_a^2 (= sigma_a^2, P_a = P_b), sigma_b^2, sigma_e^2."""
        dev = batch["P_t_dbm"].device
        sa, sb, se = (torch.tensor(10.0 ** ((s - 30.0) / 10.0), dtype=torch.float64, device=dev)
                      for s in self.sigma_dbm)
        ratio = torch.ones_like(batch["P_t_dbm"], dtype=torch.float64)             # P_a / P_b = 1 (Sec. V-A)
        return sa * ratio, sb * ratio, se * ratio

    def skr(self, batch: Batch, outputs: Design) -> torch.Tensor:
        """Exact (23) in bits of the design (float64), through the 2x2 G; checks Tr W <= P_a (1e-5 relative:
        the net sees P_t_dbm in float32, rounded by up to 6e-8 relative, i.e. ~1e-6 of the power at 40 dBm;
        the design space meets the budget of its own input to float64 rounding, baselines exactly)."""
        self._check_batch(batch)
        self._check_design(outputs)
        batch = {k: _real_tensor(k, batch[k]).to(torch.float64) for k in self.FEATURES}
        P_a = self.P_a_w(batch)
        f, h = self.channels(batch)
        F = outputs["F"]
        _check_batch_shapes(F=("[..., N, r, 2]" if not F.is_complex() else "[..., N, r]",
                               F.shape[:-3] if not F.is_complex() else F.shape[:-2]),
                            **{"the batch's fields": ("", f.shape[:-1])})
        dev = outputs["F"].device
        f, h = f.to(dev), h.to(dev)
        G, det, tr = design_gram(outputs, f, h)
        P_a = P_a.to(dev)
        if torch.any(tr.detach() > P_a * (1 + 1e-5)):
            i = (tr.detach() / P_a).argmax()
            raise ValueError(f"design over budget: Tr W = {tr[i].item():.6g} W > P_a = {P_a[i].item():.6g} W")
        na, nb, ne = (t.to(dev) for t in self.noises_w(batch))
        return skr_from_gram(G, na, nb, ne, det=det)

    def _check_batch(self, batch: Batch, fields: tuple[str, ...] | None = None) -> None:
        """The batch has the ``fields`` (default: all features), as tensors whose shapes broadcast (no
        per-element work)."""
        fields = self.FEATURES if fields is None else fields
        if not isinstance(batch, dict):
            raise ValueError(f"batch must be a dict of tensors with keys {list(self.FEATURES)}, got "
                             f"{type(batch).__name__}")
        missing = [k for k in fields if k not in batch]
        if missing:
            raise ValueError(f"batch is missing field(s) {missing}; a near-field batch needs {list(self.FEATURES)}")
        for k in fields:
            if not isinstance(batch[k], torch.Tensor):
                raise ValueError(f"batch field {k} must be a tensor [n], got {type(batch[k]).__name__}")
        _check_batch_shapes(**{k: ("", batch[k].shape) for k in fields})

    def _check_design(self, design: Design) -> None:
        """``design["F"]`` is ``[..., N, r, 2]`` real (or ``[..., N, r]`` complex) for this N and finite; the
        optional ``ortho_w``/``ortho_to`` come together. One reduction (the finiteness of F)."""
        if not isinstance(design, dict) or "F" not in design:
            keys = sorted(design) if isinstance(design, dict) else type(design).__name__
            raise ValueError(f"design must be a dict with key 'F' (the factor, W = F F^H), got {keys}")
        F = design["F"]
        if not isinstance(F, torch.Tensor) or F.dtype == torch.bool:
            raise ValueError(f"design F must be a real tensor [n, N, r, 2] (real, imag last), got "
                             f"{type(F).__name__ if not isinstance(F, torch.Tensor) else F.dtype}")
        ok = F.ndim >= 2 and F.shape[-2] == self.N if F.is_complex() else \
            F.ndim >= 3 and F.shape[-1] == 2 and F.shape[-3] == self.N
        if not ok:
            raise ValueError(f"design F must be [n, N, r, 2] real (real, imag last; W = F F^H) with N = {self.N}, "
                             f"got shape {tuple(F.shape)}{' complex' if F.is_complex() else ''}")
        if ("ortho_w" in design) != ("ortho_to" in design):
            raise ValueError("design keys ortho_w and ortho_to come together (white power orthogonal to a beam), "
                             f"got only {'ortho_w' if 'ortho_w' in design else 'ortho_to'}")
        if not bool(torch.isfinite(F).all()):
            raise ValueError("design F must be finite, got NaN or inf entries (a diverged net?)")
        if "ortho_w" in design:  # W = F F^H + ortho_w/(N-1) (I - u u^H): PSD needs ortho_w >= 0 and a unit u
            w, u = design["ortho_w"], design["ortho_to"]
            if not isinstance(w, torch.Tensor) or w.is_complex() or not bool((w >= 0).all()):
                raise ValueError("design ortho_w (white power orthogonal to a beam, W) must be a real tensor >= 0, "
                                 f"got {w if not isinstance(w, torch.Tensor) else 'negative, NaN or complex values'}")
            ok = isinstance(u, torch.Tensor) and u.ndim >= 1 and (
                u.shape[-1] == self.N if u.is_complex() else u.ndim >= 2 and u.shape[-2:] == (self.N, 2))
            if not ok:
                got = tuple(u.shape) if isinstance(u, torch.Tensor) else type(u).__name__
                raise ValueError(f"design ortho_to must be [n, N] complex or [n, N, 2] real with N = {self.N}, "
                                 f"got {got}")
            u = _as_complex(u)
            if not bool(((u.abs() ** 2).sum(-1) - 1).abs().le(1e-6).all()):  # float32 input: ~1e-7 rounding
                raise ValueError("design ortho_to must have unit norm (the beam the white power is orthogonal to)")

    @staticmethod
    def _real(design: dict[str, torch.Tensor]) -> Design:
        out = {"F": torch.view_as_real(design["F"].to(torch.complex128))}
        if "ortho_w" in design:
            out["ortho_w"] = design["ortho_w"]
            out["ortho_to"] = torch.view_as_real(design["ortho_to"].to(torch.complex128))
        return out

    def baselines(self, batch: Batch, generator: torch.Generator) -> dict[str, Design]:
        """MRC (random scalar on Bob's beam), SVD w/o PA (P_S = P_a/2), SVD w/ PA (Dinkelbach), optimal beam.
        All deterministic given the batch (``generator`` unused)."""
        f, h = self.channels(batch)
        P_a = self.P_a_w(batch)
        na, nb, ne = self.noises_w(batch)
        P_S = dinkelbach_power_split(f, h, P_a, na, nb, ne)
        v = optimal_beam(f, h, P_a, ne)
        return {
            "mrc": self._real(mrc_design(f, P_a)),
            "svd_equal": self._real(svd_design(f, P_a, P_a / 2)),
            "svd_dinkelbach": self._real(svd_design(f, P_a, P_S)),
            "optimal_beam": self._real({"F": (torch.sqrt(P_a)[..., None] * v)[..., None]}),
        }

    def optimum(self, batch: Batch, generator: torch.Generator, **options) -> Design:
        """The closed-form optimum W* (:func:`optimal_design`) as a factor; solver ``options`` are ignored
        (there is nothing to iterate)."""
        f, h = self.channels(batch)
        P_a = self.P_a_w(batch)
        v = optimal_beam(f, h, P_a, self.noises_w(batch)[2])
        return self._real({"F": (torch.sqrt(P_a)[..., None] * v)[..., None]})

    def subsets(self, batch: Batch) -> dict[str, torch.Tensor]:
        close = ((batch["r_e_m"] - batch["r_b_m"]).abs() <= self.close_r_m) & \
            ((batch["psi_e_rad"] - batch["psi_b_rad"]).abs() <= self.close_psi_rad)
        return {"eve_close": close, "eve_nearer": batch["r_e_m"] < batch["r_b_m"]}
