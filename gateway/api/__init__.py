"""The query and command API (``[api]``): FastAPI on uvicorn, OpenAPI docs at ``/docs``
(docs/api.md).

* :mod:`~gateway.api.config`: the ``[api]`` section; :mod:`~gateway.api.service`: what
  ``silkgate run`` starts; :mod:`~gateway.api.app`: the application; :mod:`~gateway.api.db`:
  its own connection pool.
* :mod:`~gateway.api.auth` (tokens, roles), :mod:`~gateway.api.scope` (which devices a token
  sees), :mod:`~gateway.api.ratelimit`, :mod:`~gateway.api.audit`, :mod:`~gateway.api.deps`
  (what every endpoint shares), :mod:`~gateway.api.responses`, :mod:`~gateway.api.cli`
  (``silkgate token``).
* :mod:`~gateway.api.kinds`: the record kinds and their SQL; :mod:`~gateway.api.dispatch` and
  :mod:`~gateway.api.routing`: commands, across worker processes.
* One router per area: :mod:`~gateway.api.devices`, :mod:`~gateway.api.queries`,
  :mod:`~gateway.api.frames`, :mod:`~gateway.api.commands`, :mod:`~gateway.api.tokens`,
  :mod:`~gateway.api.reports` (the place for the reports' endpoints).

Nothing is imported here: ``gateway.config`` reads :mod:`gateway.api.config` and the CLI
:mod:`gateway.api.cli` without loading FastAPI.
"""
