"""The outbound side: one HTTP client, its capped reader, answer shapes and URL policy."""
