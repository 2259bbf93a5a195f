"""The HTTP kit every feature's `api.py` shares: errors, middleware, pagination, dependencies."""
