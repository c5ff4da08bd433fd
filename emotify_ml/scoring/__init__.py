"""Per-frame scoring: detect -> align/crop -> classify (stateless), and the stream layer (tracks, smoothing, actions)."""
