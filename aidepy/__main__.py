"""`python -m aidepy`."""

import sys

from aidepy.cli import main

sys.exit(main())
