"""The Discord adapter (discord.py): slash commands, threads as conversations, streamed replies.

Inside this package ``import discord`` is the discord.py library: imports are absolute and ``bots/`` itself is
never on ``sys.path``, so this package (``bots.discord``) does not shadow it.
"""
