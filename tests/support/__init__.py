"""What test modules of different kinds share, one module per topic (the flows, stacks and readers of each)."""
