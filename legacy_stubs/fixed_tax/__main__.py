"""``python -m legacy_stubs.fixed_tax --help``."""

import sys

from .server import main

sys.exit(main())
