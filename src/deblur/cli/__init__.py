"""The command-line interface: parses options, reports, maps errors to exit codes."""
