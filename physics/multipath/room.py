"""A synthetic indoor dual-band generator for paper 002: a shoebox room, image sources, paths, CFRs.

The synthetic generator (:func:`indoor_dual_band`) is the embedded default dataset when no
DeepMIMO files are at hand. It is a shoebox room in the spirit of DeepMIMO 'I1' (an indoor room
with a ceiling access point and two rectangular user grids at desk height, 002 Fig. 2):

- room ``10 m x 11 m x 3.4 m`` (x, y, z), origin at a floor corner;
- access point (Alice) at ``(3.5, 4.0, 3.3) m``, 10 cm below the ceiling, deliberately off-centre
  so that no two user positions are mirror images with the same channel (002 Assumption 1);
- user grid 1: ``x in [1, 4] m, y in [1, 10] m``; grid 2: ``x in [6, 9] m, y in [1.5, 6.5] m``;
  both at ``z = 1 m`` on a 1 cm lattice (422,002 points);
- paths: line of sight plus specular reflections off the 4 walls, floor and ceiling, found with
  the image-source method for rectangular rooms (Allen and Berkley, JASA 1979) up to second order
  (25 image sources); the ``num_paths = 5`` strongest are kept (002 Sec. VII-A);
- amplitude: free space ``lambda / (4 pi d)`` at the band's carrier (Friis, unit antenna gains)
  times the product of the reflection coefficients met on the way;
- reflection coefficients: real, frequency- and angle-independent, the normal-incidence Fresnel
  coefficient ``(1 - sqrt(eps_r)) / (1 + sqrt(eps_r))`` of a lossless dielectric with the relative
  permittivities of ITU-R P.2040 (Table 3) materials at a few GHz (see :class:`IndoorRoom`). A
  negative coefficient is a phase shift of pi, which goes into ``phi_n``.

The channel is then a deterministic function of the user position in both bands (002 Assumption 1)
and reciprocal (swapping access point and user leaves it unchanged). Every random draw (user
positions, Eve directions, noise) takes an explicit ``torch.Generator``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from physics.multipath.cfr import (
    PAPER_002_BAND1_CARRIER_HZ,
    PAPER_002_BAND2_CARRIER_HZ,
    PAPER_002_BANDWIDTH_HZ,
    PAPER_002_EVE_DISTANCE_M,
    PAPER_002_NUM_PATHS,
    PAPER_002_NUM_SUBCARRIERS,
    cfr_from_paths,
    subcarrier_freqs_hz,
)
from physics.units import SPEED_OF_LIGHT_M_S

__all__ = ["DEFAULT_ROOM", "GENERATOR_VERSION", "SURFACES", "IndoorRoom", "eve_positions", "image_sources",
           "indoor_dual_band", "indoor_paths", "normal_incidence_reflection", "sample_user_positions"]


#: Version tag written into HDF5 files made by :func:`indoor_dual_band`; bump it whenever the
#: geometry, the coefficients or the path model change (the same seed then gives other data).
GENERATOR_VERSION = "phykey-indoor-v1"


# Surface order used for the reflection coefficients and the image-source bookkeeping.
SURFACES = ("wall_x0", "wall_x1", "wall_y0", "wall_y1", "floor", "ceiling")


def normal_incidence_reflection(eps_r: float) -> float:
    """Fresnel reflection coefficient of a lossless dielectric at normal incidence.

    ``Gamma = (1 - sqrt(eps_r)) / (1 + sqrt(eps_r))`` (negative for ``eps_r > 1``: a pi phase shift).
    """
    if not (math.isfinite(eps_r) and eps_r >= 1.0):
        raise ValueError(f"relative permittivity eps_r={eps_r!r} must be a finite number >= 1")
    root = math.sqrt(eps_r)
    return (1.0 - root) / (1.0 + root)


@dataclass(frozen=True)
class IndoorRoom:
    """A shoebox room with a ceiling access point and rectangular user grids.

    Attributes:
        size_m: room extent ``(Lx, Ly, Lz)``; walls at x = 0, Lx; y = 0, Ly; floor z = 0; ceiling
            z = Lz.
        ap_position_m: access point (Alice) position, strictly inside the room.
        reflection_coeff: real reflection coefficients of the surfaces in :data:`SURFACES` order
            (wall x=0, wall x=Lx, wall y=0, wall y=Ly, floor, ceiling). Defaults: normal-incidence
            Fresnel values for concrete (eps_r 5.24), glass (6.27), brick (3.91), plasterboard
            (2.73), concrete floor (5.24) and ceiling board (1.48).
        grids_m: user grids, each ``((x_min, x_max), (y_min, y_max))`` in metres.
        user_height_m: height of the user grids.
        grid_spacing_m: lattice spacing of the user grids.
    """

    size_m: tuple[float, float, float] = (10.0, 11.0, 3.4)
    ap_position_m: tuple[float, float, float] = (3.5, 4.0, 3.3)
    reflection_coeff: tuple[float, float, float, float, float, float] = (
        normal_incidence_reflection(5.24),  # wall x = 0: concrete, -0.392
        normal_incidence_reflection(6.27),  # wall x = Lx: glass facade, -0.429
        normal_incidence_reflection(3.91),  # wall y = 0: brick, -0.328
        normal_incidence_reflection(2.73),  # wall y = Ly: plasterboard, -0.246
        normal_incidence_reflection(5.24),  # floor: concrete, -0.392
        normal_incidence_reflection(1.48),  # ceiling: ceiling board, -0.098
    )
    grids_m: tuple[tuple[tuple[float, float], tuple[float, float]], ...] = (
        ((1.0, 4.0), (1.0, 10.0)),
        ((6.0, 9.0), (1.5, 6.5)),
    )
    user_height_m: float = 1.0
    grid_spacing_m: float = 0.01

    def __post_init__(self) -> None:
        if len(self.size_m) != 3 or not all(math.isfinite(v) and v > 0 for v in self.size_m):
            raise ValueError(f"size_m={self.size_m!r} must be three finite positive lengths")
        if len(self.ap_position_m) != 3 or not all(
            math.isfinite(p) and 0.0 < p < size for p, size in zip(self.ap_position_m, self.size_m, strict=True)
        ):
            raise ValueError(f"ap_position_m={self.ap_position_m!r} must lie strictly inside the room "
                             f"(0, {self.size_m})")
        if len(self.reflection_coeff) != 6 or not all(
            math.isfinite(g) and -1.0 <= g <= 1.0 for g in self.reflection_coeff
        ):
            raise ValueError(f"reflection_coeff={self.reflection_coeff!r} must be 6 real values in "
                             f"[-1, 1], one per surface {SURFACES}")
        if not (math.isfinite(self.grid_spacing_m) and self.grid_spacing_m > 0):
            raise ValueError(f"grid_spacing_m={self.grid_spacing_m!r} must be positive")
        if not (0.0 < self.user_height_m < self.size_m[2]):
            raise ValueError(f"user_height_m={self.user_height_m!r} must lie in (0, {self.size_m[2]})")
        if len(self.grids_m) == 0:
            raise ValueError("grids_m must hold at least one grid")
        for grid in self.grids_m:
            (x0, x1), (y0, y1) = grid
            if not (0.0 < x0 <= x1 < self.size_m[0] and 0.0 < y0 <= y1 < self.size_m[1]):
                raise ValueError(f"user grid {grid!r} must satisfy 0 < min <= max < room size "
                                 f"{self.size_m[:2]}")

    def grid_shape(self, index: int) -> tuple[int, int]:
        """Number of lattice points ``(nx, ny)`` of user grid ``index``."""
        (x0, x1), (y0, y1) = self.grids_m[index]
        nx = int(math.floor((x1 - x0) / self.grid_spacing_m + 1e-9)) + 1
        ny = int(math.floor((y1 - y0) / self.grid_spacing_m + 1e-9)) + 1
        return nx, ny

    @property
    def num_grid_points(self) -> int:
        """Total number of lattice points over all user grids."""
        return sum(math.prod(self.grid_shape(i)) for i in range(len(self.grids_m)))


DEFAULT_ROOM = IndoorRoom()


# --------------------------------------------------------------------------------------------
# Synthetic indoor room (image sources)
# --------------------------------------------------------------------------------------------


def _axis_images(max_order: int) -> list[tuple[int, int, int, int]]:
    """Per-axis image terms ``(p, q, hits_low_wall, hits_high_wall)`` with at most max_order hits.

    Image coordinate ``(1 - 2p) s + 2 q L`` (Allen and Berkley 1979): the path hits the wall at 0
    ``|q - p|`` times and the wall at ``L`` ``|q|`` times.
    """
    terms = []
    for p in (0, 1):
        for q in range(-max_order - 1, max_order + 2):
            low, high = abs(q - p), abs(q)
            if low + high <= max_order:
                terms.append((p, q, low, high))
    return terms


def image_sources(room: IndoorRoom, max_order: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Image sources of the access point for all wall/floor/ceiling reflection paths up to max_order.

    Returns:
        ``(positions_m [M, 3] float64, coeff [M] float64)``: image positions and the product of the
        reflection coefficients along each path (1 for line of sight, which comes first). ``M = 25``
        for ``max_order = 2``.
    """
    if not (isinstance(max_order, int) and max_order >= 0):
        raise ValueError(f"max_order={max_order!r} must be a non-negative integer")
    per_axis = _axis_images(max_order)
    positions, coeffs = [], []
    for combo in itertools.product(per_axis, repeat=3):
        if sum(low + high for _, _, low, high in combo) > max_order:
            continue
        pos, coeff = [], 1.0
        for axis, (p, q, low, high) in enumerate(combo):
            pos.append((1 - 2 * p) * room.ap_position_m[axis] + 2 * q * room.size_m[axis])
            coeff *= room.reflection_coeff[2 * axis] ** low * room.reflection_coeff[2 * axis + 1] ** high
        positions.append(pos)
        coeffs.append(coeff)
    pos_t = torch.tensor(positions, dtype=torch.float64)
    coeff_t = torch.tensor(coeffs, dtype=torch.float64)
    # Line of sight first, then by image distance to the source (stable, deterministic order).
    order = torch.argsort(torch.linalg.vector_norm(pos_t - pos_t.new_tensor(room.ap_position_m), dim=-1),
                          stable=True)
    return pos_t[order], coeff_t[order]


def _check_positions(positions_m: torch.Tensor, room: IndoorRoom, name: str) -> torch.Tensor:
    positions_m = torch.as_tensor(positions_m, dtype=torch.float64)
    if positions_m.ndim != 2 or positions_m.shape[-1] != 3:
        raise ValueError(f"{name} must have shape [N, 3], got {tuple(positions_m.shape)}")
    finite = torch.isfinite(positions_m).all(dim=-1)
    if not bool(finite.all()):
        row = int((~finite).nonzero()[0])
        raise ValueError(f"{name}[{row}]={positions_m[row].tolist()} is not finite")
    size = positions_m.new_tensor(room.size_m)
    inside = ((positions_m > 0) & (positions_m < size)).all(dim=-1)
    if not bool(inside.all()):
        row = int((~inside).nonzero()[0])
        raise ValueError(f"{name}[{row}]={positions_m[row].tolist()} m lies outside the room "
                         f"(0, 0, 0)-{room.size_m} m")
    return positions_m


def indoor_paths(
    positions_m: torch.Tensor,
    *,
    room: IndoorRoom = DEFAULT_ROOM,
    carrier_hz: float = PAPER_002_BAND1_CARRIER_HZ,
    num_paths: int = PAPER_002_NUM_PATHS,
    max_order: int = 2,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``num_paths`` strongest image-source paths from the access point to each user.

    Amplitude ``alpha_n = |Gamma_n| lambda / (4 pi d_n)`` (free space at the carrier, times the
    product ``Gamma_n`` of the reflection coefficients), delay ``tau_n = d_n / c`` (002 Sec. III-A),
    phase ``phi_n = pi`` if ``Gamma_n < 0`` else 0. Paths are ranked by ``|Gamma_n| / d_n``, which
    does not depend on the carrier, so both bands keep the same paths.

    Args:
        positions_m: ``[N, 3]`` user positions, strictly inside the room.

    Returns:
        ``(gain [N, P], delay_s [N, P], phase_rad [N, P])`` float64, strongest path first.
    """
    positions_m = _check_positions(positions_m, room, "positions_m")
    images, coeff = image_sources(room, max_order)
    if not (isinstance(num_paths, int) and 1 <= num_paths <= images.shape[0]):
        raise ValueError(f"num_paths={num_paths!r} must be an integer in [1, {images.shape[0]}] "
                         f"(image sources up to order {max_order})")
    if not (math.isfinite(carrier_hz) and carrier_hz > 0):
        raise ValueError(f"carrier_hz={carrier_hz!r} must be a finite positive frequency")
    dist = torch.cdist(positions_m, images)  # [N, M]
    strength = coeff.abs() / dist
    keep = torch.argsort(strength, dim=-1, descending=True, stable=True)[:, :num_paths]
    dist_k = dist.gather(-1, keep)
    coeff_k = coeff[keep]
    wavelength_m = SPEED_OF_LIGHT_M_S / carrier_hz
    gain = coeff_k.abs() * wavelength_m / (4.0 * math.pi * dist_k)
    phase = torch.where(coeff_k < 0, math.pi, 0.0).to(torch.float64)
    return gain, dist_k / SPEED_OF_LIGHT_M_S, phase


def indoor_dual_band(
    positions_m: torch.Tensor,
    *,
    room: IndoorRoom = DEFAULT_ROOM,
    band1_carrier_hz: float = PAPER_002_BAND1_CARRIER_HZ,
    band2_carrier_hz: float = PAPER_002_BAND2_CARRIER_HZ,
    bandwidth_hz: float = PAPER_002_BANDWIDTH_HZ,
    num_subcarriers: int = PAPER_002_NUM_SUBCARRIERS,
    num_paths: int = PAPER_002_NUM_PATHS,
    max_order: int = 2,
    chunk_size: int = 16384,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Band1 (uplink) and Band2 (downlink) CFRs of the synthetic room for each user position.

    A deterministic function of the position (002 Assumption 1): no randomness, and each user's
    CFR does not depend on the other users in the batch or on ``chunk_size``.

    Args:
        positions_m: ``[N, 3]`` user (Bob or Eve) positions, strictly inside the room; converted to
            float64 (pass float64: a float32 coordinate is off by ~1e-7 m, ~1e-5 rad at 3 GHz).

    Returns:
        ``(cfr_band1 [N, K], cfr_band2 [N, K])`` complex64, 002 (4) with
        ``f + f_l = carrier + l B / K``.
    """
    positions_m = _check_positions(positions_m, room, "positions_m")
    if not (isinstance(chunk_size, int) and chunk_size >= 1):
        raise ValueError(f"chunk_size={chunk_size!r} must be a positive integer")
    freqs = [subcarrier_freqs_hz(f, bandwidth_hz, num_subcarriers)
             for f in (band1_carrier_hz, band2_carrier_hz)]
    n = positions_m.shape[0]
    out = [torch.empty((n, num_subcarriers), dtype=torch.complex64) for _ in range(2)]
    for start in range(0, n, chunk_size):
        chunk = positions_m[start:start + chunk_size]
        for band, carrier in enumerate((band1_carrier_hz, band2_carrier_hz)):
            gain, delay, phase = indoor_paths(chunk, room=room, carrier_hz=carrier,
                                              num_paths=num_paths, max_order=max_order)
            out[band][start:start + chunk.shape[0]] = cfr_from_paths(gain, delay, phase, freqs[band])
    return out[0], out[1]


def sample_user_positions(
    n: int, generator: torch.Generator, room: IndoorRoom = DEFAULT_ROOM
) -> torch.Tensor:
    """``n`` distinct user positions drawn uniformly (without replacement) from the grid lattices.

    Returns:
        ``[n, 3]`` float64 positions in metres, in random order.
    """
    total = room.num_grid_points
    if not (isinstance(n, int) and 1 <= n <= total):
        raise ValueError(f"n={n!r} users must be an integer in [1, {total}] (lattice points of the "
                         f"user grids at {room.grid_spacing_m} m spacing)")
    flat = torch.randperm(total, generator=generator)[:n]
    positions = torch.empty((n, 3), dtype=torch.float64)
    positions[:, 2] = room.user_height_m
    offset = 0
    for g, ((x0, _), (y0, _)) in enumerate(room.grids_m):
        nx, ny = room.grid_shape(g)
        sel = (flat >= offset) & (flat < offset + nx * ny)
        local = flat[sel] - offset
        positions[sel, 0] = x0 + (local // ny).to(torch.float64) * room.grid_spacing_m
        positions[sel, 1] = y0 + (local % ny).to(torch.float64) * room.grid_spacing_m
        offset += nx * ny
    return positions


def eve_positions(
    bob_m: torch.Tensor, distance_m: float = PAPER_002_EVE_DISTANCE_M, *, generator: torch.Generator
) -> torch.Tensor:
    """Eve at ``distance_m`` from each Bob, in a uniformly random horizontal direction.

    002 Sec. VII-C (Fig. 11) uses 0.15 m; 002 (5) asks for more than half the larger wavelength
    (0.0625 m at 2.4 GHz).

    Args:
        bob_m: ``[N, 3]`` Bob positions.

    Returns:
        ``[N, 3]`` float64 Eve positions at Bob's height.
    """
    bob_m = torch.as_tensor(bob_m, dtype=torch.float64)
    if bob_m.ndim != 2 or bob_m.shape[-1] != 3:
        raise ValueError(f"bob_m must have shape [N, 3], got {tuple(bob_m.shape)}")
    if not (math.isfinite(distance_m) and distance_m > 0):
        raise ValueError(f"distance_m={distance_m!r} must be a finite positive distance")
    angle = 2.0 * math.pi * torch.rand(bob_m.shape[0], generator=generator, dtype=torch.float64)
    step = torch.stack((torch.cos(angle), torch.sin(angle), torch.zeros_like(angle)), dim=-1)
    return bob_m + distance_m * step
