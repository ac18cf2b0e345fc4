"""`python -m pydtrace` is the pydtrace command."""

from pydtrace.cli.dtrace import main

raise SystemExit(main())
