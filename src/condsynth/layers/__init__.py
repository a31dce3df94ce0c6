"""Reusable building blocks shared by the methods."""
