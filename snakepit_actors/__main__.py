"""``python -m snakepit_actors ...``: the ``snakepit-actors`` command (``ops/cli.py``)."""

import sys

from snakepit_actors.ops.cli import main

sys.exit(main())
