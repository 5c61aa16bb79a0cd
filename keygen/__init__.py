"""Key-agreement back end: quantisation (GDQG, equiprobable Gray), the public channel, information
reconciliation (Cascade, LDPC syndrome), privacy amplification (Toeplitz hashing), entropy budgets,
canonical pairs of a joint covariance, key metrics, the NIST SP 800-22 randomness tests, and the one
pipeline that runs them all on observation arrays (:func:`keygen.pipeline.run_pipeline`).

numpy/scipy (and the ``ldpc`` and ``tqdm`` packages) only, and nothing of the project outside ``keygen/``:
it knows no system. Simulating a system's observations and wiring a trained design to this pipeline is
the top floor's job (``python train.py agree``, package ``agreement``); see docs/keygen.md.
"""

from .canonical import canonical_pairs, gaussian_mi_bits
from .channel import PublicChannel
from .entropy import EntropyBudget, bits_to_symbols, mcv_min_entropy, plugin_mutual_information
from .metrics import key_error_rate, key_generation_ratio, nmse, nvd
from .pipeline import AgreementResult, Observations, quantiser_settings, run_pipeline
from .privacy import (
    BudgetNotPositive,
    PrivacyResult,
    leftover_hash_length,
    privacy_amplify,
    shake_extract,
    toeplitz_hash,
    toeplitz_seed,
)
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
    ReconcileResult,
    binary_entropy,
    regular_parity_check_matrix,
)

__all__ = [
    "TABLE_I_003_TESTS",
    "AgreementResult",
    "BudgetNotPositive",
    "Cascade",
    "EntropyBudget",
    "LDPCSyndrome",
    "NistResult",
    "Observations",
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
    "canonical_pairs",
    "cumulative_sums",
    "equiprobable_edges",
    "equiprobable_indices",
    "exchange_and_encode",
    "frequency",
    "gaussian_mi_bits",
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
    "quantiser_settings",
    "regular_parity_check_matrix",
    "run_pipeline",
    "runs",
    "serial",
    "shake_extract",
    "spectral",
    "toeplitz_hash",
    "toeplitz_seed",
]
