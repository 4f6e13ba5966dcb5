"""Model stages and bundles: front end, tokenizer, poolers, backends (STSG, TFLite), the linear head, bundle I/O."""
