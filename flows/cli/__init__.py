"""The `prepflow` command line: `app.main` is the entry point; one module per group of commands."""
