"""Thin console entry points; the logic they call lives in dml.training and dml.data."""
