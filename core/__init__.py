"""Threadwise core: everything that is not specific to one chat platform."""
