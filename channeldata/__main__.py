"""``python -m channeldata``: see :mod:`channeldata.cli`."""

import sys

from channeldata.cli import main

sys.exit(main())
