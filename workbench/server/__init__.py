"""``spikewb serve``: limits, slots, health, reattach, and the one escaping boundary."""
