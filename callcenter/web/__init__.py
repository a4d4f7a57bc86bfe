"""The HTTP side: REST API, authentication and roles."""
