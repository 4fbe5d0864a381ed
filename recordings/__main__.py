"""`python -m recordings PATH`: verify a recording folder or evidence zip offline."""

import sys

from .verify import main

sys.exit(main())
