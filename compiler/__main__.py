"""`python -m compiler` is the `mcuc` command."""

from .cli import main

main()
