"""``ca-actors eval`` and ``ab``: datasets, scorers, A/B variants and gates, logged to MLflow."""
