"""nbo: a real-time personalization and next-best-offer engine for CRM teams."""

__version__ = "0.1.0"
