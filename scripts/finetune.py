"""Fine-tune a classifier: the same as `xlmlib finetune ...` (see `xlmlib finetune --help`)."""

import sys

from xlmlib.cli import main

if __name__ == "__main__":
    sys.exit(main(["finetune", *sys.argv[1:]]))
