"""``ca-actors report``: costs and profiles from run history, and their plots."""
