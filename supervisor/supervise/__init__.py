"""Supervising processes: the master loop, its pure plan, signals, heartbeats, listeners."""
