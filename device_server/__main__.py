import sys

from device_server.cli import main

sys.exit(main())
