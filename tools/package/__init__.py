"""mqnode's host side as an installed package (`pip install .` / pipx): the `mqnode` command.

The wheel keeps the repository's layout under this package (tools/, lib/, firmware/, boards/),
so the tools find the device code next to them exactly as they do in a checkout.
"""
import importlib.util
import os
import sys


def main():
    tools = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tools")
    sys.path.insert(0, tools)       # monitor, history, demo... import each other from there
    # tools/mqnode.py under another name: `mqnode` is this package
    spec = importlib.util.spec_from_file_location("mqnode_cli", os.path.join(tools, "mqnode.py"))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    sys.exit(cli.main())
