"""`python -m shared.build`: see shared.build.cli."""
from shared.build.cli import main

raise SystemExit(main())
