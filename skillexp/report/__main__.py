"""`python -m skillexp.report <sweep dir>`: the same command as `skillexp report <sweep dir>`."""
import sys

from skillexp.report.cli import main

sys.exit(main())
