"""Use cases. No HTTP types here; transactions come from `Database.read()` / `.write()`."""
