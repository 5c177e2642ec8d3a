"""Untrusted request body -> a verified temporary file: multipart stream, limits, file name, PDF check."""
