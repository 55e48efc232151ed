"""nbbp against its peers, side by side: ``python bench/compare.py --help``. The code lives in
the package, as ``nbbp.compare``, so that the installed command ``nbbp bench`` runs it too."""

import sys

from nbbp.compare import main

if __name__ == "__main__":
    sys.exit(main())
