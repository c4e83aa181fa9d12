import sys

from funfactory.effects.runner import main

sys.exit(main())
