"""False-positive controls between scores and sinks: privacy, noise, confirmation, quiet hours (docs/filters.md)."""
