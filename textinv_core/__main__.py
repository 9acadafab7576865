import os
import sys

# transformers warns at import about optional image backends we never use; keep the terminal clean
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from .cli import main  # noqa: E402

sys.exit(main())
