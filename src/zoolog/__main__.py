"""`python -m zoolog` is the `zoolog` command."""

from zoolog.cli.main import main

raise SystemExit(main())
