"""``python -m joyvasa_core``: the whole job from the command line (see ``cli.py``)."""

import sys

from .cli import main

sys.exit(main())
