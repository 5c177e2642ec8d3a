"""HTTP layer: routes, dependencies, schemas, error rendering, middleware."""
