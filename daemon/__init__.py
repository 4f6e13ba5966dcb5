"""birdd runtime: audio sources, features, tokenizer, classifier, MQTT, CLI.

The trainer (``trainer``) imports this package; this package never imports the trainer.
"""

__version__ = "0.1.0"
