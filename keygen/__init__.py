"""Key-agreement back end: quantisation (GDQG, equiprobable Gray), information reconciliation
(Cascade, LDPC syndrome), privacy amplification (Toeplitz hashing), entropy budgets, key metrics and
the NIST SP 800-22 randomness tests.

numpy/scipy (and the ``ldpc`` package) only: no torch, no Lightning; see docs/keygen.md. The
end-to-end pipeline over the physics models is :mod:`keygen.agree` (``python -m keygen.agree``),
which needs torch and is therefore not imported here.
"""

from .entropy import EntropyBudget, bits_to_symbols, mcv_min_entropy, plugin_mutual_information
from .metrics import key_error_rate, key_generation_ratio, nmse, nvd
from .privacy import PrivacyResult, leftover_hash_length, privacy_amplify, shake_extract, toeplitz_hash, toeplitz_seed
from .quantize import (
    QuantiserTranscript,
    equiprobable_edges,
    equiprobable_indices,
    exchange_and_encode,
    gdqg_edges,
    gdqg_indices,
    key_bits,
    quantise_eve,
    quantise_pair,
)
from .randomness import (
    TABLE_I_003_TESTS,
    NistResult,
    approximate_entropy,
    binary_matrix_rank,
    bits_from_string,
    block_frequency,
    cumulative_sums,
    frequency,
    longest_run_of_ones,
    nist_pass_ratios,
    nist_pass_ratios_003,
    runs,
    serial,
    spectral,
)
from .reconcile import (
    Cascade,
    LDPCSyndrome,
    PublicChannel,
    ReconcileResult,
    binary_entropy,
    regular_parity_check_matrix,
)

__all__ = [
    "TABLE_I_003_TESTS",
    "Cascade",
    "EntropyBudget",
    "LDPCSyndrome",
    "NistResult",
    "PrivacyResult",
    "PublicChannel",
    "QuantiserTranscript",
    "ReconcileResult",
    "approximate_entropy",
    "binary_entropy",
    "binary_matrix_rank",
    "bits_from_string",
    "bits_to_symbols",
    "block_frequency",
    "cumulative_sums",
    "equiprobable_edges",
    "equiprobable_indices",
    "exchange_and_encode",
    "frequency",
    "gdqg_edges",
    "gdqg_indices",
    "key_bits",
    "key_error_rate",
    "key_generation_ratio",
    "leftover_hash_length",
    "longest_run_of_ones",
    "mcv_min_entropy",
    "nist_pass_ratios",
    "nist_pass_ratios_003",
    "nmse",
    "nvd",
    "plugin_mutual_information",
    "privacy_amplify",
    "quantise_eve",
    "quantise_pair",
    "regular_parity_check_matrix",
    "runs",
    "serial",
    "shake_extract",
    "spectral",
    "toeplitz_hash",
    "toeplitz_seed",
]
