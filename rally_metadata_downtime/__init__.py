"""Measure instance metadata downtime during Nova live migration, with Rally."""
