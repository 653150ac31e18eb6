"""Developer tools shipped with the package (not part of the public API)."""
