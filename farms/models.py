"""Farm domain models (farms, fields, crops, plantings, observations, harvests)."""
