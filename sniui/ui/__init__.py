"""The Textual front end. The only package that imports Textual (tests/ui/test_structure.py proves it)."""
