"""The oversight body (第三者機関, R27): reads every log share, reconciles, reports."""
