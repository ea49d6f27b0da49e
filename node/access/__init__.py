"""Client access: API credentials by scope, and request rate limits."""
