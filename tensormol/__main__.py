"""``python -m tensormol`` is the ``tensormol`` command."""

import sys

from tensormol.cli.main import main

sys.exit(main())
