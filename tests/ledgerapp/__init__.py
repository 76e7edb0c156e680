"""A tiny app for end-to-end consumer tests: tasks that write a ledger of what ran, and commands to feed them."""
