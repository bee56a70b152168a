"""`python -m queue_service` runs the command-line interface."""

import sys

from queue_service.cli import main

if __name__ == "__main__":
    sys.exit(main())
