"""Local republish: every normalized record, once committed, published as JSON to the operator's
own MQTT broker on ``silkgate/v1/{operator}/{kind}/{device}`` (docs/republish.md).

:mod:`.config` the ``[republish]`` section; :mod:`.message` topics and payloads (and their JSON
Schema); :mod:`.operators` device -> operator from the registry; :mod:`.outbox` the transactional
outbox the store writes and the republisher drains; :mod:`.service` the publisher. Only
:mod:`.service` imports the MQTT client: ``gateway.config`` imports :mod:`.config`.
"""
