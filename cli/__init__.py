"""The `sessionpack` command (CONTRACT.md): one module per command group, registered in
`cli.main.GROUPS`; what they share is in `cli.common`."""
