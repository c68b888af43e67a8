"""Which categories (and, next, brands and items) each user is likely to buy."""
