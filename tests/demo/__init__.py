"""Tests of the demo world and the demo chain."""
