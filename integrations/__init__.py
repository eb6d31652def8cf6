"""Adapters that make MindStore the memory of chat and agent frameworks."""
