"""Model definitions and the registry of trained, versioned models."""
