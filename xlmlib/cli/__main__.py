"""`python -m xlmlib.cli ...`: the `xlmlib` command."""

import sys

from . import main

sys.exit(main())
