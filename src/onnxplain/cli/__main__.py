import sys

from onnxplain.cli import main

sys.exit(main())
