"""Talking back to Meta: the Graph API client and the outbound work (mark read, order confirmations, media,
catalog sync) that runs on a queue of its own, apart from webhook intake."""
