"""``python -m joyvasa_core``: the whole job from the command line (see ``cli.py``); ``python -m joyvasa_core batch
MANIFEST --out-dir DIR``: many videos in one run (see ``batch/command.py``)."""

import sys

if sys.argv[1:2] == ["batch"]:
    from .batch.command import main as batch_main

    sys.exit(batch_main(sys.argv[2:]))

from .cli import main

sys.exit(main())
