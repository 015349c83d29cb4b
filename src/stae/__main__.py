"""``python -m stae`` (and ``torchrun -m stae``) runs the command line."""

import sys

from stae.cli import main

sys.exit(main())
