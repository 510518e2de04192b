"""Channel adapters: each turns its transport into triage Messages and back."""
