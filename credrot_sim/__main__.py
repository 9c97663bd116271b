"""``python -m credrot_sim TOOL [ARGS...]``: one simulated invocation."""

import sys

from credrot_sim.table import main

sys.exit(main())
