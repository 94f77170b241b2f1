"""`mirador serve`: one warm orchestrator behind three HTTP dialects and a web page.

    app.py         the app factory: lifespan, middleware, routers, error handlers
    runtime.py     what lives as long as the server: orchestrator, stream gate, answer pumps
    limits.py      the stream gate (503 + Retry-After), request size, bearer token, host/origin
    errors.py      errors the HTTP edge adds, and JSON error bodies in each dialect
    streaming.py   responses that stop their answer when they end; SSE and NDJSON framing
    schemas.py     the native API's bodies, and JSON schemas of the SSE events
    compat.py      model names (`mirador:auto`, chains, manifest models) and text views of a
                   staged answer, shared by the Ollama and OpenAI dialects
    native.py      Mirador's own API under /mirador (SSE events as `mirador ask --json`)
    ollama_api.py  Ollama's /api/chat, /api/generate, /api/tags, /api/ps, /api/show, /api/version
    openai_api.py  OpenAI's /v1/chat/completions and /v1/models
    services.py    memory and ratings, as far as those subsystems are installed
    client.py      the CLI's side: find a running server and stream an answer from it
    static/        the web page (plain HTML, CSS and JS; no build step)

Importing this package is cheap: FastAPI is imported only by `app.py` and the route
modules, so `mirador ask` can use `client.py` without paying for it.
"""
