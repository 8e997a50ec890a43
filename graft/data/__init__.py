"""Data: text, speech synthesis, Lhotse manifests, features."""
