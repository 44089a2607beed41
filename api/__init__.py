"""FastAPI application: routes, schemas, auth. Never imports the gateway (see DESIGN.md)."""
