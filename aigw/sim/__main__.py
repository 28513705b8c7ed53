"""``python -m aigw.sim`` is ``aigw-sim``."""

import sys

from aigw.sim.main import main

sys.exit(main())
