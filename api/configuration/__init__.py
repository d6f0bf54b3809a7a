"""Configuration templates per station model, drift against them, and the 2.0.1 device model."""
