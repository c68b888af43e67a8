"""The online feature store: published batch features plus live updates, read in one trip."""
