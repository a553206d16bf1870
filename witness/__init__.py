"""The witness (issue 14): a separate party, run by the oversight body, that cosigns the
hub's checkpoints only when each is consistent with the last one it accepted."""
