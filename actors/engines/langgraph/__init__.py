"""engines/langgraph."""
