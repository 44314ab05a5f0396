"""`python -m flows.cli`: the same as the `prepflow` command."""

from flows.cli.app import main

main()
