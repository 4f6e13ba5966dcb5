"""birdd trainer: builds model bundles offline from a BirdCLEF-style dataset.

Imports the runtime (``daemon``) for features and the bundle format, never the other way round.
"""
