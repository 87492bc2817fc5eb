"""`sniui --headless`: the engine as a daemon, with an access log instead of a screen."""
