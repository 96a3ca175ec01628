"""batchtui: the Batch jobs forms of Dynamics 365 F&O / AX in a terminal."""

__version__ = "0.1.0"
