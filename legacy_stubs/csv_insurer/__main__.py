"""``python -m legacy_stubs.csv_insurer --help``."""

import sys

from .server import main

sys.exit(main())
