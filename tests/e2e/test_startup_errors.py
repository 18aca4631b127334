"""`threadwise serve` refuses a configuration that cannot work before it connects anywhere, naming the
variables to fix."""

from __future__ import annotations


async def test_discord_shards_without_a_count_stop_serve_with_a_clear_error(run_cli) -> None:  # type: ignore[no-untyped-def]
    env = {"DISCORD_BOT_TOKEN": "some-token", "THREADWISE_DISCORD_SHARD_IDS": "0,1"}

    result = await run_cli("serve", env=env)

    assert result.code == 2
    assert "THREADWISE_DISCORD_SHARD_IDS and THREADWISE_DISCORD_SHARD_COUNT: set both" in result.err
    assert "Traceback" not in result.err


async def test_a_shard_beyond_the_count_stops_serve_with_a_clear_error(run_cli) -> None:  # type: ignore[no-untyped-def]
    env = {
        "DISCORD_BOT_TOKEN": "some-token",
        "THREADWISE_DISCORD_SHARD_IDS": "3",
        "THREADWISE_DISCORD_SHARD_COUNT": "3",
    }

    result = await run_cli("serve", env=env)

    assert result.code == 2
    assert "THREADWISE_DISCORD_SHARD_IDS: shard 3 does not exist" in result.err
