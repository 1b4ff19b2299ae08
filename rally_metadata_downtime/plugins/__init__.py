"""Rally plugins: everything below this package is imported by Rally's loader."""
