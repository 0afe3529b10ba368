"""``python -m wsfast``: see ``wsfast.cli``."""

from .cli import main

raise SystemExit(main())
