"""Batch work: replay of files and folders, output formats, evaluation."""
