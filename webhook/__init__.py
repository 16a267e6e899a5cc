"""The HTTP side: Meta's webhook endpoint. It knows HTTP and the Redis inbox, never the workers.

Nothing is imported here, so that `python -m webhook.serve` (the web process) loads only granian and
the app it is given.
"""
