"""Serving load benchmark: open-loop client, baseline app, world setup (see __main__)."""
