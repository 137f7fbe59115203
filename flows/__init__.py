"""Customer intelligence and flows: metrics, segments, purchase model, flow engine, messages."""
