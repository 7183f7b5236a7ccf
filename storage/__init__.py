"""Records and the rules about them. Never imports telegram."""
