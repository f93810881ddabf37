"""``python -m imgx`` runs the command-line interface."""

from imgx.cli import main

raise SystemExit(main())
