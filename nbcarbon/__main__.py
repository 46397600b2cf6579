"""``python -m nbcarbon`` is the ``nbcarbon`` command."""

import sys

from .cli import main

sys.exit(main())
