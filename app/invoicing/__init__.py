"""The order → invoice plan: pure functions, no I/O."""
