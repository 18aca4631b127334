"""Secrets and personal data are replaced by typed placeholders; ordinary numbers and code are left alone.

Every credential here is an obviously fake value of the right shape, assembled from pieces so that this file
holds no literal that a secret scanner would take for a real key.
"""

from __future__ import annotations

import sys
import time
import unicodedata

import pytest

from core.guards.folding import INVISIBLE
from core.guards.redactor import ALL_RULES, Redacted, Redaction, Redactor, placeholder
from tests.cpu_time import collector_paused

REDACTOR = Redactor()

OPENAI_KEYS = [
    "sk-" + "proj-" + "A" * 40,
    "sk-" + "Ab3" * 16,  # legacy 48-character key
    "sk-" + "svcacct-" + "Zx9_" * 10 + "-Qw8" * 5,
    "sk-" + "proj-" + "aB1_cD2-" * 12,
]
SLACK_TOKENS = [
    "xoxb-" + "1" * 12 + "-" + "2" * 13 + "-" + "Ab" * 12,
    "xoxp-" + "3" * 12 + "-" + "4" * 12 + "-" + "5" * 13 + "-" + "f0" * 16,
    "xoxa-" + "2-" + "Cd" * 20,
    "xoxr-" + "Ef9" * 10,
    "xoxs-" + "7" * 12 + "-" + "Gh" * 10,
    "xapp-" + "1-" + "A0" + "B" * 9 + "-" + "6" * 13 + "-" + "ab12" * 16,
    "xoxe-" + "1-" + "My0x" * 20,  # refresh token of token rotation
    "xoxe." + "xoxp-" + "1-" + "Rt5" * 20,  # rotating user token
    "xoxc-" + "8" * 12 + "-" + "9" * 13 + "-" + "Cl1" * 20,  # client (browser session) token
    "xoxd-" + "aB3%2Fc" * 8 + "%3D",  # session cookie, URL-encoded
    "xoxd-" + "aB3+c/" * 8 + "==",  # session cookie, raw base64
]
GITHUB_TOKENS = [prefix + "_" + "Ab1" * 12 for prefix in ("ghp", "gho", "ghu", "ghs", "ghr")] + [
    "github_pat_" + "11AB" * 5 + "CD_" + "xY9" * 20,
]
AWS_KEYS = ["AKIA" + "TESTONLY" + "0" * 8, "ASIA" + "Z" * 8 + "23456789"]


def only(kind: str) -> Redactor:
    return Redactor([kind])


def kinds(result: Redacted) -> dict[str, int]:
    return {r.kind: r.count for r in result.redactions}


def private_key_block(label: str = "RSA ") -> str:
    body = "\n".join(["MIIEowIBAAKCAQEA" + "x" * 48, "q" * 64, "Zm9v+YmFy/" * 6, "AbCd=="])
    return f"-----BEGIN {label}PRIVATE KEY-----\n{body}\n-----END {label}PRIVATE KEY-----"


# --- public surface -----------------------------------------------------------------------------------------


def test_all_rules_names() -> None:
    assert ALL_RULES == (
        "openai_key",
        "slack_token",
        "github_token",
        "aws_access_key",
        "private_key",
        "email",
        "phone",
        "card",
    )
    assert Redactor().enabled == ALL_RULES


def test_unknown_rule_is_rejected_with_the_valid_names() -> None:
    with pytest.raises(ValueError) as caught:
        Redactor(["email", "ssn"])
    message = str(caught.value)
    assert "ssn" in message
    for name in ALL_RULES:
        assert name in message


def test_a_single_rule_name_may_be_passed_as_a_string() -> None:
    assert Redactor("email").enabled == ("email",)


def test_empty_text_and_clean_text() -> None:
    assert REDACTOR.redact("") == Redacted("", ())
    clean = "Can you summarise this thread for me? Thanks!"
    result = REDACTOR.redact(clean)
    assert result == Redacted(clean, ())
    assert not result.changed


def test_results_are_frozen() -> None:
    result = REDACTOR.redact("mail a.b@example.com")
    with pytest.raises(AttributeError):
        result.text = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        result.redactions[0].count = 2  # type: ignore[misc]


# --- credentials --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "secret"),
    [("openai_key", key) for key in OPENAI_KEYS]
    + [("slack_token", token) for token in SLACK_TOKENS]
    + [("github_token", token) for token in GITHUB_TOKENS]
    + [("aws_access_key", key) for key in AWS_KEYS],
)
def test_credentials_are_replaced_with_a_typed_placeholder(kind: str, secret: str) -> None:
    for template in ("{}", "my key is {} ok?", "KEY={}\n", "`{}`", '"{}",', "({})"):
        text = template.format(secret)
        result = REDACTOR.redact(text)
        assert result.text == template.format(placeholder(kind)), text
        assert result.redactions == (Redaction(kind, 1),)


def test_placeholder_shape() -> None:
    assert placeholder("openai_key") == "[REDACTED:openai_key]"
    assert REDACTOR.redact("x " + OPENAI_KEYS[0]).text == "x [REDACTED:openai_key]"


def test_credential_lookalikes_are_left_alone() -> None:
    texts = [
        "sk-short",  # too short
        "task-" + "a1B" * 10,  # "sk-" inside a word
        "the sk-learn-vs-pytorch-comparison-notes page",  # lowercase slug, not a key
        "ghp_" + "A" * 20,  # too short for a GitHub token
        "AKIA" + "ABC",  # too short
        "AKIA" + "A" * 17,  # too long: part of some other identifier
        "xoxb-123",  # too short
        "use the skip-list",
    ]
    for text in texts:
        assert REDACTOR.redact(text) == Redacted(text, ()), text


def test_private_key_block_is_replaced_whole() -> None:
    for label in ("", "RSA ", "EC ", "OPENSSH ", "ENCRYPTED ", "DSA "):
        block = private_key_block(label)
        text = f"here is the key:\n{block}\nplease keep it safe"
        result = REDACTOR.redact(text)
        assert result.text == "here is the key:\n[REDACTED:private_key]\nplease keep it safe"
        assert result.redactions == (Redaction("private_key", 1),)


def test_encrypted_pem_headers_and_pgp_blocks() -> None:
    pem = (
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,"
        + "0A1B" * 8
        + "\n\n"
        + "Q" * 64
        + "\n-----END RSA PRIVATE KEY-----"
    )
    pgp = (
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: fake\n\n"
        + "lQ" * 32
        + "\n=AbCd\n-----END PGP PRIVATE KEY BLOCK-----"
    )
    assert REDACTOR.redact(pem).text == "[REDACTED:private_key]"
    assert REDACTOR.redact(pgp).text == "[REDACTED:private_key]"


def test_two_key_blocks_and_prose_between_them() -> None:
    text = f"first\n{private_key_block()}\nand then, isn't it odd?\n{private_key_block('EC ')}\nend"
    result = REDACTOR.redact(text)
    assert (
        result.text == "first\n[REDACTED:private_key]\nand then, isn't it odd?\n[REDACTED:private_key]\nend"
    )
    assert kinds(result) == {"private_key": 2}


def test_truncated_private_key_still_loses_its_key_material() -> None:
    lines = ["MIIEowIBAAKCAQEA" + "x" * 48, "q" * 64]
    text = (
        "-----BEGIN PRIVATE KEY-----\n" + "\n".join(lines) + "\n\nthat's all I could copy, why won't it load?"
    )
    result = REDACTOR.redact(text)
    assert result.text == "[REDACTED:private_key]\n\nthat's all I could copy, why won't it load?"
    for line in lines:
        assert line not in result.text


def test_a_public_key_or_certificate_is_not_a_private_key() -> None:
    text = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----"
    assert REDACTOR.redact(text).text == text


# --- e-mail -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email",
    ["jane.doe@example.com", "bob+filter@mail.example.co.uk", "x_y-z%1@sub-domain.example.io", "A@B.ORG"],
)
def test_email_addresses(email: str) -> None:
    result = REDACTOR.redact(f"Contact {email}, or <mailto:{email}>.")
    assert result.text == "Contact [REDACTED:email], or <mailto:[REDACTED:email]>."
    assert result.redactions == (Redaction("email", 2),)


def test_email_lookalikes_are_left_alone() -> None:
    texts = [
        "git clone git@github.com:org/repo.git",
        "npm i left-pad@1.3.0",
        "@dataclass(frozen=True)",
        "ping @channel and @here",
        "user@localhost",
        "image@sha256:abcdef",
    ]
    for text in texts:
        assert REDACTOR.redact(text).text == text, text


# --- phone numbers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "phone",
    [
        "+1 415 555 2671",
        "+1 (415) 555-2671",
        "+1-415-555-2671",
        "+1.415.555.2671",
        "+14155552671",
        "+44 20 7946 0958",
        "+44 (0)20 7946 0958",
        "+49 (0)30 123456",
        "+33 6 12 34 56 78",
        "+91 98765 43210",
        "(415) 555-2671",
        "415-555-2671",
        "415.555.2671",
        "415 555 2671",
        "1-800-555-0199",
        "020 7946 0958",
        "07700 900123",
        "06 12 34 56 78",
        "0151 12345678",
    ],
)
def test_phone_numbers(phone: str) -> None:
    result = REDACTOR.redact(f"call me at {phone} tomorrow")
    assert result.text == "call me at [REDACTED:phone] tomorrow"
    assert result.redactions == (Redaction("phone", 1),)


def test_phone_at_the_edges_and_in_punctuation() -> None:
    assert REDACTOR.redact("+44 20 7946 0958").text == "[REDACTED:phone]"
    assert REDACTOR.redact("(tel: 415-555-2671).").text == "(tel: [REDACTED:phone])."


def test_international_number_followed_by_more_digits_is_cut_at_e164_length() -> None:
    # 12 digits of phone, then a year: the year would make 16 digits, more than E.164 allows.
    assert REDACTOR.redact("+44 20 7946 0958 2026 11 22").text == "[REDACTED:phone] 2026 11 22"


NOT_PHONES = [
    "2026-11-22",
    "22-11-2026",
    "05-11-2026",
    "11/22/2026",
    "10:30",
    "10:30:59",
    "2026-11-22T10:30:00Z",
    "version 1.2.3",
    "v10.22.333",
    "192.168.1.10",
    "10.0.0.1:8080",
    "+10.0.0.1",
    "order 123456789",
    "order #4815162342",
    "ticket ORD-2026-11-22-0042",
    "id 1234567",
    "between 100-2000 users",
    "3.14159265358979",
    "+1250000 revenue",
    "1,234,567.89",
    "100 200 3000 4000",
    "HTTP 404",
    "port 5432",
    "1732291200000",
]


@pytest.mark.parametrize("text", NOT_PHONES)
def test_ordinary_numbers_are_not_phones(text: str) -> None:
    assert REDACTOR.redact(text) == Redacted(text, ())


# --- payment cards ------------------------------------------------------------------------------------------

LUHN_VALID = [
    "4111111111111111",
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "5555 5555 5555 4444",
    "5105-1051-0510-5100",
    "2223 0031 2200 3222",  # Mastercard 2-series
    "3782 822463 10005",  # Amex 4-6-5
    "371449635398431",
    "6011 1111 1111 1117",
    "3530 1113 3330 0000",
    "4222222222222",  # 13 digits
    "6011 0009 9013 9424 561",  # 19 digits
]


@pytest.mark.parametrize("card", LUHN_VALID)
def test_luhn_valid_cards_are_replaced(card: str) -> None:
    result = REDACTOR.redact(f"card: {card}, exp 12/29")
    assert result.text == "card: [REDACTED:card], exp 12/29"
    assert result.redactions == (Redaction("card", 1),)


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111112",  # 16 digits, Luhn fails
        "4111 1111 1111 1112",
        "4111-1111-1111-1112",
        "1234567812345670",  # Luhn passes, but no card scheme starts with 1 (Discord ids, epoch ms)
        "<@1234567812345670>",
        "41111111111",  # too short
        "41111111111111111111",  # too long
        "4111-1111-1111-1111-1111",  # too long in groups
        "ORDER-4111111111111111",  # part of an identifier
        "4111111111111111abc",
        "0.4111111111111111",
        "2 3 4 5 6 7 8 9 10 11 12 13 14",  # a counting list, not groups of a card number
    ],
)
def test_card_lookalikes_are_left_alone(text: str) -> None:
    assert REDACTOR.redact(text) == Redacted(text, ())


# --- code, ids and other things that must survive -----------------------------------------------------------

CODE = """\
def backoff(attempt: int) -> float:
    delays = [0.5, 1, 2, 4, 8, 16, 32]
    timeout = 30_000  # ms
    port = 8080
    if attempt > 3 and 1234567890 % 97 == 13:
        return min(delays[attempt], 2 ** 31 - 1) * 1.5e-3
    return 10.0 / 3.0
"""

SURVIVORS = [
    CODE,
    "uuid 123e4567-e89b-12d3-a456-426614174000",
    "uuid 4111111111-1111-1111-1111-111111111111",
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
    "short sha 9fceb02, tag v1.2.3-rc.1",
    "sha256:" + "4111111111111111" * 4,
    "released on 2026-11-22 at 10:30, build 1.2.3 from 10.0.0.12",
    "Slack ts 1732291200.123456 in C0123ABCDEF",
    "Discord <@123456789012345678> in <#1098765432109876543>",
    "rgb(255, 128, 64) and #ff8040",
    "the sum 1 + 2 + 3 = 6",
]


@pytest.mark.parametrize("text", SURVIVORS)
def test_code_and_identifiers_are_left_alone(text: str) -> None:
    assert REDACTOR.redact(text) == Redacted(text, ())


# --- enabling, counting, idempotency ------------------------------------------------------------------------

MIXED = (
    f"key {OPENAI_KEYS[0]} and {OPENAI_KEYS[1]}\n"
    f"slack {SLACK_TOKENS[0]}, github {GITHUB_TOKENS[0]}, aws {AWS_KEYS[0]}\n"
    f"{private_key_block()}\n"
    "mail jane@example.com, bob@example.org and carol@example.net\n"
    "phone +1 415 555 2671, card 4111 1111 1111 1111\n"
    "released 2026-11-22 10:30 as 1.2.3 on 192.168.1.10"
)


def test_counts_per_kind_in_stable_order() -> None:
    result = REDACTOR.redact(MIXED)
    assert result.redactions == (
        Redaction("openai_key", 2),
        Redaction("slack_token", 1),
        Redaction("github_token", 1),
        Redaction("aws_access_key", 1),
        Redaction("private_key", 1),
        Redaction("email", 3),
        Redaction("phone", 1),
        Redaction("card", 1),
    )
    assert result.text.endswith("released 2026-11-22 10:30 as 1.2.3 on 192.168.1.10")
    assert result.text.count("[REDACTED:") == 11


@pytest.mark.parametrize("kind", ALL_RULES)
def test_disabled_rules_leave_their_matches_alone(kind: str) -> None:
    everything_but = Redactor([name for name in ALL_RULES if name != kind])
    result = everything_but.redact(MIXED)
    assert kind not in kinds(result)
    assert placeholder(kind) not in result.text
    alone = only(kind).redact(MIXED)
    assert set(kinds(alone)) == {kind}
    assert kinds(alone)[kind] == kinds(REDACTOR.redact(MIXED))[kind]


def test_no_rules_enabled_changes_nothing() -> None:
    assert Redactor([]).redact(MIXED) == Redacted(MIXED, ())


@pytest.mark.parametrize(
    "text",
    [MIXED, CODE, *LUHN_VALID, "+1 555 123 4567 4111111111111111", "a@example.com4111 1111 1111 1111"],
)
def test_redaction_is_idempotent(text: str) -> None:
    once = REDACTOR.redact(text)
    twice = REDACTOR.redact(once.text)
    assert twice == Redacted(once.text, ())


def test_placeholders_never_match_a_rule() -> None:
    text = " ".join(placeholder(kind) for kind in ALL_RULES)
    assert REDACTOR.redact(text) == Redacted(text, ())


def test_a_replacement_that_exposes_a_neighbour_is_handled_in_the_same_call() -> None:
    # The phone's last group is followed by a card number; once the phone is gone, the card stands alone.
    result = REDACTOR.redact("+1 555 123 4567 4111111111111111")
    assert result.text == "[REDACTED:phone] [REDACTED:card]"
    assert kinds(result) == {"phone": 1, "card": 1}


# --- invisible characters and compatibility forms ----------------------------------------------------------

FULL_WIDTH = {chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)}  # ASCII ! .. ~ -> U+FF01 .. U+FF5E


def full_width(text: str) -> str:
    return "".join(FULL_WIDTH.get(char, char) for char in text)


@pytest.mark.parametrize("invisible", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e"])
@pytest.mark.parametrize(
    ("kind", "secret"),
    [
        ("openai_key", OPENAI_KEYS[0]),
        ("slack_token", SLACK_TOKENS[0]),
        ("github_token", GITHUB_TOKENS[0]),
        ("aws_access_key", AWS_KEYS[0]),
        ("email", "ada.lovelace@example.com"),
        ("card", "4111 1111 1111 1111"),
    ],
)
def test_a_format_character_inside_a_secret_does_not_hide_it(kind: str, secret: str, invisible: str) -> None:
    for at in (1, 3, len(secret) // 2, len(secret) - 2):
        hidden = secret[:at] + invisible + secret[at:]
        result = REDACTOR.redact(f"héllo 👋 {hidden} — ok?")
        assert result.text == f"héllo 👋 {placeholder(kind)} — ok?", hidden
        assert result.redactions == (Redaction(kind, 1),)


def test_several_format_characters_in_one_secret() -> None:
    hidden = "\u200b".join("ada@example.com")
    assert REDACTOR.redact(f"mail {hidden}!").text == "mail [REDACTED:email]!"
    key = "\u2060\ufeff".join([OPENAI_KEYS[0][:2], OPENAI_KEYS[0][2:9], OPENAI_KEYS[0][9:]])
    assert REDACTOR.redact(f"{key}\u200b").text == "[REDACTED:openai_key]\u200b"  # outside: kept


@pytest.mark.parametrize(
    ("kind", "secret"),
    [
        ("email", "ada@example.com"),
        ("openai_key", OPENAI_KEYS[0]),
        ("slack_token", SLACK_TOKENS[0]),
        ("github_token", GITHUB_TOKENS[0]),
        ("aws_access_key", AWS_KEYS[0]),
        ("phone", "+1 415 555 2671"),
    ],
)
def test_full_width_secrets_are_found(kind: str, secret: str) -> None:
    wide = full_width(secret)
    assert wide != secret
    result = REDACTOR.redact(f"写信给 {wide} 吧")
    assert result.text == f"写信给 {placeholder(kind)} 吧"
    assert result.redactions == (Redaction(kind, 1),)


def test_full_width_email_and_mixed_forms() -> None:
    assert REDACTOR.redact("ａｄａ＠ｅｘａｍｐｌｅ．ｃｏｍ").text == "[REDACTED:email]"
    assert REDACTOR.redact("ada﹫example．com and ａｄａ@example.com").text == (
        "[REDACTED:email] and [REDACTED:email]"
    )


UNICODE_PROSE = (
    "Réunion à 10:30 🎉👍🏽 👩\u200d💻 🏳\ufe0f\u200d🌈 会议记录：请查看附件。Привет, мир! "
    "\u200fمرحبا بالعالم\u200f — naïve cafe\u0301 ✅ ﬁle ①②③ ｆｕｌｌ ｗｉｄｔｈ \u00a0 x²"
)


def test_text_around_a_redaction_stays_exactly_as_it_was() -> None:
    key = "sk-\u200b" + OPENAI_KEYS[0][3:]
    text = f"{UNICODE_PROSE} ａｄａ＠ｅｘａｍｐｌｅ．ｃｏｍ {UNICODE_PROSE} {key} {UNICODE_PROSE}"
    result = REDACTOR.redact(text)
    assert (
        result.text
        == f"{UNICODE_PROSE} [REDACTED:email] {UNICODE_PROSE} [REDACTED:openai_key] {UNICODE_PROSE}"
    )
    assert result.text.encode("utf-8").count(UNICODE_PROSE.encode("utf-8")) == 3


def test_unicode_text_without_secrets_is_returned_unchanged() -> None:
    for text in (UNICODE_PROSE, "\u200b" * 50, "ｆｕｌｌ ｗｉｄｔｈ １２３ ＠ｈｅｒｅ", "café\u0301 ½ ﬀ"):
        assert REDACTOR.redact(text) == Redacted(text, ()), text


def test_redaction_of_folded_text_is_idempotent() -> None:
    once = REDACTOR.redact(f"{UNICODE_PROSE} ａｄａ＠ｅｘａｍｐｌｅ．ｃｏｍ x\u200b{AWS_KEYS[0]}")
    assert kinds(once) == {"email": 1, "aws_access_key": 1}
    assert REDACTOR.redact(once.text) == Redacted(once.text, ())


def test_every_format_character_counts_as_invisible() -> None:
    missing = [
        hex(code)
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) == "Cf" and INVISIBLE.fullmatch(chr(code)) is None
    ]
    assert missing == []


# --- adversarial input --------------------------------------------------------------------------------------

ADVERSARIAL = {
    "digits": "4" * 200_000,
    "spaced digits": "4444 " * 40_000,
    "dashed digits": "1-" * 100_000,
    "plus groups": "+1 2 " * 40_000,
    "at signs": "a@" * 100_000,
    "long local part": "a" * 200_000 + "@",
    "dotted domain": "a@" + "b." * 100_000,
    "dotted numbers": ".1" * 100_000,
    "key prefixes": "sk-" * 70_000,
    "key body": "sk-" + "a-" * 100_000,
    "slack prefixes": "xoxb-" * 40_000,
    "pem headers": "-----BEGIN PRIVATE KEY-----\n" * 7_500,
    "pem headers and prose": ("-----BEGIN PRIVATE KEY-----\nno, it's prose\n" * 4_500)
    + "-----END PRIVATE KEY-----",
    "parens": "+1 (" * 50_000,
    "area codes": "+44 (0)" * 30_000,
    "short emails": "a@b.c" * 40_000,
    "mixed": "0 1-2.3 (4) +5 a@b. sk- " * 8_000,
    "zero-width": "\u200b" * 200_000,
    "zero-width in a key": "sk-" + "a\u200b" * 100_000,
    "full-width at signs": "ａ＠" * 100_000,
    "full-width digits": "４" * 200_000,
    "ligatures": "ﬁ@" * 100_000,
    "folded mixed": "０ １-２.３ (４) ＋５ ａ＠ｂ. ｓｋ- \u200b" * 8_000,
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_input_finishes_quickly(name: str) -> None:
    text = ADVERSARIAL[name]
    assert len(text) >= 190_000
    with collector_paused():  # a full collection of the test run's heap would be counted here too
        started = time.thread_time()  # CPU time of this thread: other processes on the machine do not count
        REDACTOR.redact(text)
        spent = time.thread_time() - started
    assert spent < 1.0  # a sanity bound against catastrophic backtracking only
