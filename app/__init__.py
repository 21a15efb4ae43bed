"""The sample application whose background scripts quest runs."""
