"""The HTTP API: a front end of the engine, like the cockpit (see DESIGN.md, "HTTP API").

Nothing heavy is imported here: `cockpit.api.server.serve_api` pulls in starlette and
uvicorn only when the API is served, so the cockpit paints its first frame without them.
"""
