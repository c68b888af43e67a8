"""nbo on real public data: the Instacart order sample (see __main__.py)."""
