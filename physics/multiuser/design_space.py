"""Beam-domain multi-user key generation (paper 003): the design space of the scenario (raw network outputs ->
feasible beam-domain precoders and receive matrices) and the problem a model-level refinement solves from it."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from physics.checks import check_choice
from physics.multiuser.channel import dft_matrix, path_tensors, shared_pair_mask
from physics.multiuser.designs import apply_budget, semi_unitary
from physics.multiuser.rates import _check_curious, training_rates

__all__ = ["MultiUserDesignSpace"]


def _gram_schmidt(re: torch.Tensor, im: torch.Tensor, passes: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormalise the columns of the complex matrix re + j im ``[..., D, n]`` (modified Gram-Schmidt,
    twice: the QR factor with positive diagonal), real arithmetic only so that torch.export can trace it."""
    cols_r = [re[..., :, j] for j in range(re.shape[-1])]
    cols_i = [im[..., :, j] for j in range(im.shape[-1])]
    for _ in range(passes):
        for j in range(len(cols_r)):
            vr, vi = cols_r[j], cols_i[j]
            for i in range(j):
                qr, qi = cols_r[i], cols_i[i]
                cr = (qr * vr + qi * vi).sum(-1, keepdim=True)  # <q, v> = q^H v
                ci = (qr * vi - qi * vr).sum(-1, keepdim=True)
                vr, vi = vr - (cr * qr - ci * qi), vi - (cr * qi + ci * qr)
            norm = torch.sqrt((vr * vr + vi * vi).sum(-1, keepdim=True)).clamp_min(1e-12)
            cols_r[j], cols_i[j] = vr / norm, vi / norm
    return torch.stack(cols_r, -1), torch.stack(cols_i, -1)


class MultiUserDesignSpace(nn.Module):
    """Projection of raw network outputs onto the 003 design set, with an optional downlink budget.

    Precoders are built in the span of the steering vectors of *every* UT's paths (the only directions a
    precoder can excite or avoid; components orthogonal to all of them carry neither signal nor
    interference): P_k = GS(a_BS(own strongest M_e paths of UT k) + 0.1 A W_k), A ``[M, K N_P]`` the
    antenna-domain steering vectors of all paths, computed in the graph from the sin(AoD) features, W_k
    ``[K N_P, M_e]`` complex from head ``P``; GS is the Gram-Schmidt QR projection onto semi-unitary
    matrices. With W = 0 this is the eigen-beam design (the span of the UT's own paths). The beam-domain
    precoder is P~_k = A_BS^H P_k. C~_k = GS(E_k + 0.1 R_k) with R_k from head ``C`` and the start E_k:
    ``receive_start="identity"`` E_k = I; ``"eigen_shifted"`` UT k's eigenvectors of R~_UT,k, column j the
    ((j - k) mod N_k)-th (:meth:`_receive_start`). Downlink budget
    (default K M_e, what disjoint beams use): every P~_k is scaled by min(1, sqrt(budget) / ||sum_k P~_k||_F);
    ``budget=None`` reproduces (30) as printed. Outputs ``P [n, K, M, M_e, 2]``, ``C [n, K, N_k, N_e, 2]``.

    Refinement: :meth:`refinement_problem` states the problem a model-level refinement (``models.refine``)
    solves from the network's design: the training objective (``objective``, the scenario's (30) or (27)) over
    the full beam-domain design set (QR onto semi-unitary matrices, then the budget), with the draws' path
    tensors computed from the features in float64. The steps themselves belong to the model, not the physics.
    """

    RECEIVE_STARTS = ("identity", "eigen_shifted")

    def __init__(self, M: int, K: int, N_k: int, N_P: int, M_e: int, N_e: int, budget: float | None,
                 receive_start: str = "identity", power_iterations: int = 30, objective: str = "reuse",
                 shared_paths: int = 0, curious: list[list[int]] | None = None):
        super().__init__()
        self.objective, self.shared_paths = objective, int(shared_paths)
        if curious is not None:
            _check_curious(curious, K)
        self.curious = curious if curious is not None else [[] for _ in range(K)]
        self.register_buffer("pair_mask", shared_pair_mask(K, N_P, self.shared_paths).float(), persistent=False)
        self.M, self.K, self.N_k, self.N_P, self.M_e, self.N_e = M, K, N_k, N_P, M_e, N_e
        self.receive_start = check_choice("receive_start", receive_start, self.RECEIVE_STARTS)
        self.power_iterations = int(power_iterations)
        F = dft_matrix(N_k)
        self.register_buffer("F_re", F.real.to(torch.float32).contiguous(), persistent=False)
        self.register_buffer("F_im", F.imag.to(torch.float32).contiguous(), persistent=False)
        self.budget = None if budget is None else float(budget)
        self.heads = {"P": K * K * N_P * M_e * 2, "C": K * N_k * N_e * 2}  # raw head names = output names (export)
        A = dft_matrix(M)
        self.register_buffer("A_re", A.real.to(torch.float32).contiguous(), persistent=False)
        self.register_buffer("A_im", A.imag.to(torch.float32).contiguous(), persistent=False)
        self.register_buffer("idx", torch.arange(M, dtype=torch.float32), persistent=False)
        base = torch.zeros(K, K * N_P, M_e)  # selects each UT's own strongest min(N_P, M_e) paths
        for k in range(K):
            for j in range(min(N_P, M_e)):
                base[k, k * N_P + j, j] = 1.0
        if M_e > N_P:  # no own path left: start those columns on fixed DFT beams (made orthogonal by GS)
            pass
        self.register_buffer("base", base, persistent=False)

    def forward(self, raw: dict[str, torch.Tensor], x: torch.Tensor) -> dict[str, torch.Tensor]:
        n = x.shape[0]
        K, Np, M, Me, Nk, Ne = self.K, self.N_P, self.M, self.M_e, self.N_k, self.N_e
        dt = raw["P"].dtype
        s = x[:, : K * Np].to(dt)  # sin(AoD) of every path, [n, K Np]
        phase = -math.pi * s[:, :, None] * self.idx.to(dt)  # [n, K Np, M]
        a_re, a_im = torch.cos(phase) / math.sqrt(M), torch.sin(phase) / math.sqrt(M)
        w = raw["P"].reshape(n, K, K * Np, Me, 2)  # W_k
        wr = 0.1 * w[..., 0] + self.base.to(dt)
        wi = 0.1 * w[..., 1]
        # P_k = A (w_r + j w_i), A = a^T: [n, K, M, Me]
        ar, ai = a_re.transpose(1, 2)[:, None], a_im.transpose(1, 2)[:, None]
        pr = ar @ wr - ai @ wi
        pi = ar @ wi + ai @ wr
        if Me > Np:  # columns without an own path: add a fixed DFT beam per column so GS never sees zeros
            extra = torch.zeros(M, Me, dtype=dt, device=x.device)
            for j in range(Np, Me):
                extra[(j * 7) % M, j] = 1.0
            pr = pr + extra
        pr, pi = _gram_schmidt(pr, pi)
        # beam domain P~ = A_BS^H P
        Ar, Ai = self.A_re.to(dt), self.A_im.to(dt)
        br = Ar.T @ pr + Ai.T @ pi
        bi = Ar.T @ pi - Ai.T @ pr
        if self.budget is not None:
            power = (br.sum(1) ** 2 + bi.sum(1) ** 2).sum((-1, -2))  # ||sum_k P~_k||_F^2, [n]
            scale = torch.clamp(torch.sqrt(self.budget / power.clamp_min(1e-12)), max=1.0)[:, None, None, None]
            br, bi = br * scale, bi * scale
        c = raw["C"].reshape(n, K, Nk, Ne, 2)
        if self.receive_start == "eigen_shifted":
            e_r, e_i = self._receive_start(x, dt)
        else:
            e_r = torch.eye(Nk, Ne, dtype=dt, device=x.device)
            e_i = torch.zeros_like(e_r)
        cr, ci = _gram_schmidt(e_r + 0.1 * c[..., 0], e_i + 0.1 * c[..., 1])
        return {"P": torch.stack([br, bi], -1), "C": torch.stack([cr, ci], -1)}

    def refinement_problem(self, design: dict[str, torch.Tensor], x: torch.Tensor) -> dict[str, Any]:
        """The problem a refinement (``models.refine``) solves from ``design`` (real ``P``, ``C`` as returned by
        :meth:`forward`) for the draws with raw features ``x``: maximise the sum over UTs of the training
        objective over the feasible set. Returns a dict of

        * ``start``: the design in float64, detached (a stand-in on the rows ``ok`` leaves out);
        * ``project(params) -> params``: QR onto semi-unitary matrices, then the budget (differentiable);
        * ``objective(params, context) -> [n]``: the sum over UTs of (30) or (27);
        * ``context``: the draws' path tensors from the features (float64; inputs of a traced step, not constants);
        * ``ok`` ``[n]`` bool: the rows the objective can evaluate. The others (non-finite features or start,
          |sin| > 1, |rho| > 1, a path power above 100 dB) must keep the network's design: a batch is never
          stopped by one bad row (the exported wrapper then sets rows outside the training ranges to NaN). Their
          ``start`` and ``context`` are a stand-in row (all features 0, a fixed semi-unitary start) whose result
          is discarded.

        Call it with autograd enabled (outside inference mode): the tensors it returns are used in gradient steps.
        """
        n, K, Np = x.shape[0], self.K, self.N_P
        f = x.detach().clone().to(torch.float64)
        start = {k: v.detach().clone().to(torch.float64) for k, v in design.items()}
        KP = K * Np
        ok = (torch.isfinite(f).all(-1) & (f[:, :2 * KP].abs() <= 1).all(-1) & (f[:, 2 * KP:3 * KP] <= 100).all(-1)
              & (f[:, 3 * KP:].abs() <= 1).all(-1))
        for v in start.values():
            ok = ok & torch.isfinite(v).flatten(1).all(-1)
        f = torch.where(ok[:, None], f, torch.zeros_like(f))
        stand_in = {"P": torch.eye(self.M, self.M_e, dtype=f.dtype, device=f.device),
                    "C": torch.eye(self.N_k, self.N_e, dtype=f.dtype, device=f.device)}
        start = {k: torch.where(ok.reshape(-1, 1, 1, 1, 1), v,
                                torch.stack([stand_in[k], torch.zeros_like(stand_in[k])], -1).expand_as(v))
                 for k, v in start.items()}
        rho = f[:, 3 * KP:4 * KP].reshape(n, K, Np) if self.shared_paths else None
        pth = path_tensors(f[:, :KP].reshape(n, K, Np), f[:, KP:2 * KP].reshape(n, K, Np),
                           f[:, 2 * KP:3 * KP].reshape(n, K, Np), self.N_k, self.M, rho, self.shared_paths,
                           self.pair_mask)
        budget, objective_name, curious = self.budget, self.objective, self.curious

        def cplx(t: torch.Tensor) -> torch.Tensor:
            return torch.complex(t[..., 0], t[..., 1])

        def project(p: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            P = apply_budget(semi_unitary(cplx(p["P"])), budget)
            C = semi_unitary(cplx(p["C"]))
            return {"P": torch.stack([P.real, P.imag], -1), "C": torch.stack([C.real, C.imag], -1)}

        def objective(p: dict[str, torch.Tensor], paths: dict[str, torch.Tensor]) -> torch.Tensor:
            return training_rates(objective_name, cplx(p["P"]), cplx(p["C"]), paths, curious).sum(-1)

        return {"start": start, "project": project, "objective": objective, "context": pth, "ok": ok}

    def _receive_start(self, x: torch.Tensor, dt: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """UT k's eigenvectors of R~_UT,k (19)-(20) from the sin(AoA) and power features, by subspace iteration
        in real arithmetic (exportable), columns cyclically shifted by k: ``[n, K, N_k, N_e]`` real and imag.

        With pilot reuse the BS's uplink observation for UT k carries every UT's H_j^T C_j^*; what matters is the
        rotation C_j^* C_k^T between UTs. Eigen receive beams in the same order for every UT (or the identity)
        line up the UTs' strong UT-side directions on the same uplink streams; shifting UT k's by k spreads them.
        """
        n = x.shape[0]
        K, Np, Nk, Ne = self.K, self.N_P, self.N_k, self.N_e
        KP = K * Np
        s = x[:, KP:2 * KP].to(dt).reshape(n, K, Np)
        g = torch.pow(10.0, x[:, 2 * KP:3 * KP].to(dt).reshape(n, K, Np) / 10)
        g = g / g.sum(-1, keepdim=True)  # only the directions matter
        ph = -math.pi * s[..., None] * torch.arange(Nk, dtype=dt, device=x.device)  # ULA response (2)
        ar, ai = torch.cos(ph) / math.sqrt(Nk), torch.sin(ph) / math.sqrt(Nk)  # [n, K, Np, Nk]
        Fr, Fi = self.F_re.to(dt), self.F_im.to(dt)
        ur, ui = ar @ Fr + ai @ Fi, ai @ Fr - ar @ Fi  # u = a conj(F): beam-domain UT vectors
        gr, gi = g[..., None] * ur, g[..., None] * ui
        Rr = gr.transpose(-1, -2) @ ur + gi.transpose(-1, -2) @ ui  # R = sum_p g_p u_p u_p^H  [n, K, Nk, Nk]
        Ri = gi.transpose(-1, -2) @ ur - gr.transpose(-1, -2) @ ui
        Xr = torch.eye(Nk, dtype=dt, device=x.device).expand(n, K, Nk, Nk)
        Xi = torch.zeros_like(Xr)
        for _ in range(self.power_iterations):  # subspace iteration: columns -> eigenvectors, descending
            Xr, Xi = _gram_schmidt(Rr @ Xr - Ri @ Xi, Rr @ Xi + Ri @ Xr, passes=1)
        idx = [[(j - k) % Nk for j in range(Ne)] for k in range(K)]  # UT k: column j = eigenvector j - k
        # columns picked by slicing, not by an index tensor (a traced constant that make_fx cannot export)
        Er = torch.stack([torch.stack([Xr[:, k, :, i] for i in idx[k]], -1) for k in range(K)], 1)
        Ei = torch.stack([torch.stack([Xi[:, k, :, i] for i in idx[k]], -1) for k in range(K)], 1)
        return Er, Ei
