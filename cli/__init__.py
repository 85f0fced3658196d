"""The `mediaflow` command: a shell over the library, the flows and the service (`cli.main`)."""
