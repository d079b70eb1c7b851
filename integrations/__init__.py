"""Clients for the external APIs. No Django models here: each client takes plain config and returns typed data."""
