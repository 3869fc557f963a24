"""Development helpers shared by `sessionpack demo` and the tests: local stand-ins for services."""
