"""A synthetic CRM world with explicit ground truth, to measure models against an oracle."""
