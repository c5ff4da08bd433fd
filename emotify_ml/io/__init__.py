"""Frame readers (pictures, videos with stride and range, cameras, streams) and output sinks, shared by every app."""
