"""Channel data sets as files: the dual-band CFR HDF5 contract of KGNet (002) and its generators.

Kept apart from the Lightning DataModules (as torchgeo keeps datasets apart from datamodules):
:mod:`channeldata.dualband_file` (format, validation, reader, writers), :mod:`channeldata.synthetic`
(the embedded synthetic indoor room), :mod:`channeldata.deepmimo` (DeepMIMO 4 exporter) and
:mod:`channeldata.cli` (``python -m channeldata``). No Lightning here.
"""
