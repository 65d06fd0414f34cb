import sys

from services.projector.service import main

sys.exit(main())
