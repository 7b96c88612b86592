import sys

from tailface.cli.main import main

sys.exit(main())
