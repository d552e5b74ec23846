"""Acquisition policies and batch selection over discrete candidate pools."""
