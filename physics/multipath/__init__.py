"""The multipath OFDM channel of paper 002 (KGNet): the CFR model and the synthetic indoor dual-band generator.

:mod:`~physics.multipath.cfr`: subcarrier frequencies, the CFR 002 (4) from paths, the realisation into features
(002 (13)), AWGN, and the 002 constants (carriers, bandwidth, subcarriers, paths, Eve's distance).
:mod:`~physics.multipath.room`: the shoebox room, its image sources and strongest paths, the dual-band CFRs of a
batch of users, and the draws of user and Eve positions (the embedded default data of ``channeldata``).
"""

from physics.multipath.cfr import (
    PAPER_002_BAND1_CARRIER_HZ,
    PAPER_002_BAND2_CARRIER_HZ,
    PAPER_002_BANDWIDTH_HZ,
    PAPER_002_EVE_DISTANCE_M,
    PAPER_002_NUM_PATHS,
    PAPER_002_NUM_SUBCARRIERS,
    add_awgn,
    cfr_from_paths,
    cfr_to_features,
    features_to_cfr,
    subcarrier_freqs_hz,
)
from physics.multipath.room import (
    DEFAULT_ROOM,
    GENERATOR_VERSION,
    SURFACES,
    IndoorRoom,
    eve_positions,
    image_sources,
    indoor_dual_band,
    indoor_paths,
    normal_incidence_reflection,
    sample_user_positions,
)

__all__ = [
    "DEFAULT_ROOM", "GENERATOR_VERSION", "PAPER_002_BAND1_CARRIER_HZ", "PAPER_002_BAND2_CARRIER_HZ",
    "PAPER_002_BANDWIDTH_HZ", "PAPER_002_EVE_DISTANCE_M", "PAPER_002_NUM_PATHS", "PAPER_002_NUM_SUBCARRIERS",
    "SURFACES", "IndoorRoom", "add_awgn", "cfr_from_paths", "cfr_to_features", "eve_positions", "features_to_cfr",
    "image_sources", "indoor_dual_band", "indoor_paths", "normal_incidence_reflection", "sample_user_positions",
    "subcarrier_freqs_hz",
]
