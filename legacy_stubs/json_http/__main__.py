"""``python -m legacy_stubs.json_http --help``."""

import sys

from .server import main

sys.exit(main())
