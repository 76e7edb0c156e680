"""``huey.contrib``."""
