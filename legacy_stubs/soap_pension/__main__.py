"""``python -m legacy_stubs.soap_pension --help``."""

import sys

from .server import main

sys.exit(main())
