"""Reviews turned into labels: the exported dataset and per-species threshold suggestions."""
