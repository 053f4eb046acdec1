"""`python -m supervisor`: the command line, as the `pyfork` script runs it."""
import sys

from .cli import main

sys.exit(main())
