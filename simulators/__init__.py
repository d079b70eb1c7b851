"""Protocol-faithful HTTP simulators for the two external systems the connector talks to.

* :mod:`simulators.bigcommerce`: BigCommerce stores (orders v2, refunds/hooks/channels v3, rate limits, webhooks
  signed the Standard Webhooks way). Run with ``python -m simulators.bigcommerce --port 8701``.
* :mod:`simulators.sagex3`: a Sage X3 Syracuse server (api1 REST journal entries with HTTP Basic, GraphQL at
  ``/xtrem/api`` with connected-app JWTs and behind a cloud-style OAuth2 gateway (:mod:`simulators.xtrem`),
  accounting rules, connection-level faults). Run with ``python -m simulators.sagex3 --port 8702``.
* :mod:`simulators.control`: a small ``requests``-based client that drives both simulators' ``/_sim/`` control
  APIs, plus :func:`simulators.control.spawn` to run one as a separate process.
* :mod:`simulators.receiver`: a recording webhook receiver for tests.
* :mod:`simulators.stack`: both simulators plus the running connector, for the demo, end-to-end tests and benchmarks.

The servers use the standard library, plus graphql-core and PyJWT (project dependencies) for the GraphQL part.
Both servers can run in-process on an ephemeral port: ``server, base_url = start_in_thread(...)``; stop them
with ``server.stop()``.
"""
