"""`python -m queue_service` runs the command-line interface."""

import sys

from queue_service.cli import main

sys.exit(main())
