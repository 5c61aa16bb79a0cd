"""Near-field XL-MIMO key generation (paper 004): the SKR (23) of a pilot covariance W.

Alice sends random pilots w ~ CN(0, W) (artificial randomness, 004 Sec. III-IV), W PSD with Tr W <= P_a. Bob
observes z_b = f^H w + n_b (5), Eve z_ae = h^H w + n_e (7), Alice z_a = f^H w + n_a (11) after precoding her
uplink estimate of f. The SKR is the conditional mutual information I(z_a; z_b | z_ae) of (13), which with
sigma_B^2 = f^H W f, sigma_E^2 = h^H W h, sigma_AE^2 = f^H W h and the *effective* noise variances of (11)
(``noise_a`` = (P_a/P_b) sigma_a^2, ``noise_b``, ``noise_e``) is (23):

    R = log2(1 + alpha^2 / ((noise_a + noise_b) alpha + noise_a noise_b)),
    alpha = sigma_B^2 - |sigma_AE^2|^2 / (sigma_E^2 + noise_e)                       (24), (26).

(23) depends on W only through the 2x2 matrix G = [f h]^H W [f h], so every design is evaluated from G
(O(N r) per draw for a rank-r factor W = F F^H, :func:`physics.nearfield.designs.design_gram`), never from an
N x N matrix at N = 256.

Numerics (docs/architecture.md section 5): alpha is formed as (det G + sigma_B^2 noise_e) / (sigma_E^2 + noise_e)
with det G = sigma_B^2 sigma_E^2 - |sigma_AE^2|^2 >= 0 taken from the Cauchy-Binet (Lagrange) sum of
squared 2x2 minors for factor designs, so a rank-one design with Eve on top of Bob loses nothing to
cancellation; everything is divided by a reference noise power first (the SKR is scale-free).
"""

from __future__ import annotations

import torch

from physics.checks import as_real, check_broadcast, check_finite
from physics.gaussian import gaussian_mi_bits
from physics.nearfield.channel import _channel_pair, _check_channel
from physics.units import LN2

__all__ = ["FEASIBILITY_TOL", "skr", "skr_covariance_form", "skr_from_gram"]


#: Relative tolerances of the feasibility checks of :func:`skr` (PSD and budget), by real dtype:
#: the smallest eigenvalue of W must be >= -tol * max(Tr W, tiny) and Tr W <= (1 + tol) * budget_w.
#: float64: 1e-9 covers eigensolver error (~N eps ||W||) up to N ~ 1e4; float32: 1e-4 likewise.
FEASIBILITY_TOL = {torch.float64: 1e-9, torch.float32: 1e-4}


def _noises(noise_a, noise_b, noise_e, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three effective noise variances of (11) as float64 tensors on ``like``'s device, each finite and > 0."""
    return tuple(as_real(nm, v, like=like, positive=True)
                 for nm, v in (("noise_a", noise_a), ("noise_b", noise_b), ("noise_e", noise_e)))


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
    check_finite("W", Wc)
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
        b = as_real("budget_w", budget_w, like=Wc, positive=True)
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
        budget_w = as_real("budget_w", budget_w, like=f.real)
        shapes["budget_w"] = ("", budget_w.shape)
    check_broadcast(**shapes)
    Wc = _check_W(W, N, budget_w) if check else W.to(torch.complex128)
    Y = torch.stack(torch.broadcast_tensors(f, h), -1)                          # [..., N, 2]
    G = Y.mH @ Wc @ Y
    return skr_from_gram(G, na, nb, ne)


def skr_covariance_form(W: torch.Tensor, f: torch.Tensor, h: torch.Tensor, noise_a, noise_b, noise_e) -> torch.Tensor:
    """Test reference: (13) from the 3x3 covariance (17) of (z_a, z_b, z_ae) with (14), by log-determinants.

    I = log2(|K_{z_a z_ae}| |K_{z_b z_ae}| / (sigma_EE^2 |K_{z_a z_b z_ae}|)) (15)-(16), each determinant by LU
    (:func:`physics.gaussian.gaussian_mi_bits` with ``method="lu"``). Independent of the algebra of (18)-(23).
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
    return gaussian_mi_bits(K, [0], [1], [2], method="lu")
