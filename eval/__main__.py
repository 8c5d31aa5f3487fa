"""``python -m eval NAME [options]``: runs one protocol of the registry; ``python -m eval`` lists them."""

import importlib
import sys

from eval import PROTOCOLS


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "--list"):
        print("usage: python -m eval NAME [options]   (artdup eval NAME [options]); 'NAME --help' for its options")
        print("protocols:")
        for name, (_, method, what) in PROTOCOLS.items():
            print(f"  {name:15s} {method:12s} {what}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in PROTOCOLS:
        print(f"error: unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}", file=sys.stderr)
        return 2
    return importlib.import_module(PROTOCOLS[name][0]).main(rest) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
