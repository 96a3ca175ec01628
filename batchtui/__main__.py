"""`python -m batchtui`: the same as the `batchtui` command."""

from .cli import main

raise SystemExit(main())
