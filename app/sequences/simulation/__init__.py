"""Dry runs of sequences: the real engine on throwaway rows, rolled back."""
