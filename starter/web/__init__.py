"""cartkeeper's HTTP endpoint (FastAPI): the recovery and unsubscribe links of reminder
e-mail (``/r/{token}``, ``/u/{token}``) and health checks (``/healthz``, ``/readyz``).

    app = create_app(settings)          # starter.web.app; uvicorn serves it
    cartkeeper web --port 8080          # starter.cli.web; `cartkeeper dev` runs it too

Heavy imports (FastAPI, the Temporal SDK) happen in the submodules, not here.
"""
