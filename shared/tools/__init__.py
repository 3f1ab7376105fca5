"""Maintainer-only measurements (make bench); numbers for notes, never asserted in tests."""
