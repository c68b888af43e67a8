"""What a feature is and how it is computed, from the data contract to the online store."""
