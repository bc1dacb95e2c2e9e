"""Demo sales data: the orders table and the command that fills it."""
