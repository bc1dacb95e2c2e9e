"""The clock process: Longrun's periodic duties, run in a process of their own (a Procfile line)."""
