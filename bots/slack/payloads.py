"""What a verified Slack request may carry, validated into typed values before bolt or our code reads it."""

from __future__ import annotations

DELIVERY = "threadwise_delivery"  # bolt context key: the verified request's signature
