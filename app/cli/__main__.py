"""`python -m app.cli`: the same as the `woobird` command."""

from app.cli import main

main()
