"""``python -m upscaler`` runs the command line."""

import sys

from upscaler.cli import main

sys.exit(main())
