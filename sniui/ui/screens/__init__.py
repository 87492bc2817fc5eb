"""One module per screen, each with its own .tcss next to it."""
