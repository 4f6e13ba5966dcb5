"""``birdd web``: the detection store as a BirdNET-Go-compatible API and a web page (read-only)."""
