"""rsitr: remote-sensing image-text retrieval, from versioned data to promoted models."""
