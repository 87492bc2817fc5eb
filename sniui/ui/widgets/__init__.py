"""Small reusable widgets; each posts intent as messages and leaves decisions to its screen."""
