"""Compatibility modules for projects moving from huey: ``djhuey`` (huey.contrib.djhuey's names) and ``helpers``
(huey.contrib.helpers' names, built on one storage's abilities)."""
