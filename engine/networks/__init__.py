"""Recurrent networks simulated without learning (the E/I benchmark networks)."""
