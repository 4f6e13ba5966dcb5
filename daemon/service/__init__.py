"""The daemon (``birdd run``): threads that move data from the source through the pipeline to the sinks."""
