"""The step engine: scheduler scan, claims, step execution, event wake-ups, exits."""
