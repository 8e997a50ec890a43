"""Graft: speech recognition recipes with cross-lingual layer transfer."""
