import sys

from .cli import main

if __name__ == "__main__":  # a spawned worker process re-imports the main module
    sys.exit(main())
