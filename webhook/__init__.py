"""The HTTP side: Meta's webhook endpoint. It knows HTTP and the Redis inbox, never the workers."""

from webhook.app import create_app

__all__ = ["create_app"]
