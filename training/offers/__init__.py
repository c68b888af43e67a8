"""Offer response: who converts after which message, with or without which incentive."""
