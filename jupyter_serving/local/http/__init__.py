"""The backend's REST surface: FastAPI routers of the control plane, their dependencies and error
handlers, and the bare-ASGI fast path of the data plane (invocations)."""
