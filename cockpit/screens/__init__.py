"""One module per panel, each with its .tcss beside it."""
