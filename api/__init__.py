"""The business's REST API over its own data: catalogs, products, orders, conversations, customers, analytics.

A WSGI app of its own (`api.wsgi:app`, the Procfile's `api:` line), apart from the public webhook. Every
request carries one tenant's API key; everything it reads or writes goes through a session that sees that
tenant's rows only (api/scope.py).
"""
