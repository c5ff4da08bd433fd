"""Frame sources (cameras, streams, videos, images), image decoding and output sinks, shared by every app."""
