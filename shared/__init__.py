"""circuits-book's helper package: the model zoo, tasks, circuit discovery and the book build.

Chapters import its modules directly (``from shared import seq_circuits as sc``); see the README for
the list. Importing the package itself loads nothing heavy.
"""
