"""Optional helpers that build on one storage's abilities (huey's ``huey.contrib`` names)."""
