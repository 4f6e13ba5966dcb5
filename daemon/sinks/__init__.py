"""Where detections go: the durable outbox (and through it MQTT), the log, the detection store, clips."""
