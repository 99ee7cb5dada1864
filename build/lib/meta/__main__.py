"""``python -m meta``: the command line of :mod:`meta.cli`."""

from meta.cli import main

raise SystemExit(main())
