"""Compatibility modules for projects moving from other task queues (``djhuey``)."""
