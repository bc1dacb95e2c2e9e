"""Who is asking: anonymous browser identities and hashed API tokens."""
