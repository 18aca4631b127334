"""Threadwise front ends: chat-platform adapters, the terminal chat and the CLI."""
