"""The application: the ``actorctl`` commands, the composition of the trading tree, the control
socket and the data directory.

The composition root of the library packages, and a package of its own so that their imports
point one way (``docs/architecture.md``): ``app`` may import ``actors``, ``sim``,
``supervisors``, ``runtime`` and ``config``; none of them imports ``app``.
"""
