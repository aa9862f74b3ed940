"""The gateway's HTTP side: one module per concern, every handler built on ``base.Guarded``."""
