"""``python -m condsynth.cli``: the same as the ``condsynth`` command."""

import sys

from condsynth.cli import main

sys.exit(main())
