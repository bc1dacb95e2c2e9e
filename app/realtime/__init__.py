"""Live job events: Redis pub/sub channel names, the message schema, publish and fan-out."""
