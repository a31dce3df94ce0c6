"""``python -m condsynth``: the same as the ``condsynth`` command."""

import sys

from condsynth.cli import main

sys.exit(main())
