"""dml: deep metric learning experiments."""
