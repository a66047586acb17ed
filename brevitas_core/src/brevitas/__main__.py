"""``python -m brevitas`` runs the CLI."""

from brevitas.cli import main

raise SystemExit(main())
