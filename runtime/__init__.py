"""What the web app, the workers and the CLI share: configuration, logging and the Redis inbox."""
