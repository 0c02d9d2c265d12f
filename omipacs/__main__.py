"""``python -m omipacs`` runs the command line."""

from omipacs.cli import main

raise SystemExit(main())
