"""`python -m index_builder`: see index_builder/cli.py."""

import sys

from index_builder.cli import main

sys.exit(main())
