"""``python -m lla_studio`` is the same as the ``lla-studio`` console script."""

import sys

from lla_studio.cli import main

if __name__ == "__main__":
    sys.exit(main())
