"""The ground layer: facts about the repo that every other layer reads, and nothing above it."""
