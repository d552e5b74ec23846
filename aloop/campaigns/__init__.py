"""Campaigns: definition file, durable SQL event log, and the propose/record/retrain loop."""
