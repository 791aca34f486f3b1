"""Code shared by the webhook, the worker, the index builder and the CLI."""
