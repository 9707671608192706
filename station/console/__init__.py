"""The maintenance console: line protocol, access control, commands and serial transport."""
