"""The `zoolog` command line."""
