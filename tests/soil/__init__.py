"""Tests of socmap.data (soil tables to samples); tests/data/ holds the stored stage fixtures."""
