"""The HTTP edge: routes, request validation, and the middleware that maps errors to API.md's JSON."""
