"""The Slack adapter: a thin slack-bolt layer over the engine."""
