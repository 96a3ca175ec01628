"""`python -m batchtui.cli`: the same as the `batchtui` command."""

from . import main

raise SystemExit(main())
