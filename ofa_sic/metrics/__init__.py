"""Caption metrics (CIDEr-D) used by the SCST reward and by validation."""
