"""Test support: an event loop in a thread, and the demo topology in one process."""
