"""Live job events on /notifications: the WebSocket hub, its sessions and the fan-out from Redis."""
