"""001 default point: SKR of the random, identity/equal-phase, water-filling and optimum designs."""
import torch

from physics.irs import identity_design, optimum, random_design, skr_case1, stats_001, water_filling_design
from physics.units import dbm_to_w

stats = stats_001(torch.tensor([10.0, 10.0, 0.0]), M=4, L_H=6, L_V=6, eta=0.4, kappa=1.0)  # L = 36
P_max = dbm_to_w(25.0)
g = torch.Generator().manual_seed(0)
designs = {
    "random": random_design(stats, P_max, g),
    "identity/equal-phase": identity_design(stats, P_max),
    "water-filling": water_filling_design(stats, P_max),
    "optimum": optimum(stats, P_max, generator=g)[:2],
}
for name, (P, theta) in designs.items():
    print(f"{name:>22}: {skr_case1(P, theta, stats).item():.4f} bits")
