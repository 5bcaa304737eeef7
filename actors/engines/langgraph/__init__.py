"""The in-process LangGraph engine: the same flow as a StateGraph, the same node code (needs ``[langgraph]``)."""
