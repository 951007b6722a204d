"""The terminal adapter: drills and the demo, read like a chat transcript."""
