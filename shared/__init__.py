"""Code that more than one of the webhook, the worker, the index builder and the CLI use.

It imports nothing from `functions/` or `index_builder/`. Modules log through standard
`logging.getLogger(__name__)` loggers with plain messages; the program that runs them
decides where records go (the functions' JSON lines, the CLI's stderr).
"""
