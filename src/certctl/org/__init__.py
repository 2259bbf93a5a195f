"""Teams and the owners who belong to them (notification recipients of their certificates)."""
