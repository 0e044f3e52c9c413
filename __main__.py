"""`python -m stonewall` runs the stonewall command."""
import sys

from stonewall.cli import main

sys.exit(main())
