"""The command line's argument parser, shared by ``nbbp`` (cli) and ``nbbp bench`` (compare)."""

import argparse


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (``nbbp: error: ...``) and exits 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")
