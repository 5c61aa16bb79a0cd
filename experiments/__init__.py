"""Paper-reproduction scripts (figures and tables)."""
