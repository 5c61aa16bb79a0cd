"""Key-agreement back end: GDQG quantisation, key metrics and NIST SP 800-22 randomness tests.

numpy/scipy only (no torch, no Lightning); see docs/keygen.md.
"""

from .metrics import key_error_rate, key_generation_ratio, nmse, nvd
from .quantize import exchange_and_encode, gdqg_edges, gdqg_indices, key_bits
from .randomness import (
    NistResult,
    approximate_entropy,
    binary_matrix_rank,
    bits_from_string,
    block_frequency,
    cumulative_sums,
    frequency,
    nist_pass_ratios,
    runs,
    serial,
    spectral,
)

__all__ = [
    "NistResult",
    "approximate_entropy",
    "binary_matrix_rank",
    "bits_from_string",
    "block_frequency",
    "cumulative_sums",
    "exchange_and_encode",
    "frequency",
    "gdqg_edges",
    "gdqg_indices",
    "key_bits",
    "key_error_rate",
    "key_generation_ratio",
    "nist_pass_ratios",
    "nmse",
    "nvd",
    "runs",
    "serial",
    "spectral",
]
