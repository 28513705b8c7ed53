"""The AI gateway controller.

``controller.runtime`` is the controller framework (informers, cache, workqueue, controllers, manager); it
knows nothing of AI gateways. The packages beside it hold the domain: sync functions, builders, the extension
server.
"""
