"""HTTP only: the FastAPI decision service (routers, schemas, error mapping)."""
