"""The benchmark's Django app: one no-op task on the ``bench`` queue."""
