"""Outbound targets: plain objects that send one outbox row each (the service's delivery threads drive them)."""
