"""PII detection for the guardrails: which spans of a text are personal data, and their masking.

Databricks detects PII with Microsoft Presidio and masks each finding with its entity type,
`<EMAIL_ADDRESS>`, `<PHONE_NUMBER>` (seen in the `anonymized_input` a blocked query answers). The
local backend cannot run Presidio: `presidio-analyzer` needs spaCy and a spaCy language model
(`en_core_web_lg`, which Presidio downloads at first use from GitHub, not from PyPI), and offline
installs have neither. The candidates on PyPI were no better: `scrubadub` needs TextBlob/NLTK corpora
(downloads) for part of its detectors and pulls in scikit-learn; `commonregex` is unmaintained since
2014 and validates nothing (no Luhn, no SSN rules).

So this module is Presidio's pattern recognizers redone, with Presidio's entity names:
- EMAIL_ADDRESS: an RFC 5322-ish local part, `@`, a dotted domain with a 2+ letter TLD.
- CREDIT_CARD: 13 to 19 digits (spaces or dashes between groups) that pass the Luhn checksum.
- US_SSN: `AAA-GG-SSSS` (dashes, spaces or dots, used consistently), area not 000, 666 or 9xx,
  group not 00, serial not 0000. Nine bare digits are not taken (too many false positives).
- IBAN_CODE: country code, check digits, 11 to 30 alphanumerics (spaces allowed every four), valid
  by ISO 13616 mod-97.
- IP_ADDRESS: IPv4 and IPv6 addresses that `ipaddress` parses.
- PHONE_NUMBER: Google's libphonenumber (the `phonenumbers` package, as Presidio uses it), numbers that
  are *possible* in the US and in international (+CC) form; a NANP/E.164 regex if it is missing.
Person names and street addresses (Presidio finds them with the spaCy model) are not detected.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}\b")
CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
SSN = re.compile(r"(?<![\d-])(\d{3})([- .])(\d{2})\2(\d{4})(?![\d-])")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
PHONE_FALLBACK = re.compile(r"(?<!\w)(?:\+\d{1,3}[ .-]?)?(?:\(\d{3}\)|\d{3})[ .-]?\d{3}[ .-]?\d{4}(?!\w)")
PHONE_REGIONS = ("US",)  # international numbers (+CC) parse in any region


@dataclass(frozen=True)
class Finding:
    entity: str
    start: int
    end: int


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _cards(text: str) -> list[Finding]:
    out = []
    for m in CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            out.append(Finding("CREDIT_CARD", m.start(), m.end()))
    return out


def _ssns(text: str) -> list[Finding]:
    out = []
    for m in SSN.finditer(text):
        area, group, serial = m.group(1), m.group(3), m.group(4)
        if area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000":
            out.append(Finding("US_SSN", m.start(), m.end()))
    return out


def iban_ok(code: str) -> bool:
    code = code.replace(" ", "")
    if not 15 <= len(code) <= 34:
        return False
    rearranged = code[4:] + code[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _ibans(text: str) -> list[Finding]:
    return [Finding("IBAN_CODE", m.start(), m.end()) for m in IBAN.finditer(text) if iban_ok(m.group())]


def _ips(text: str) -> list[Finding]:
    out = []
    for pattern in (IPV4, IPV6):
        for m in pattern.finditer(text):
            candidate = m.group()
            if pattern is IPV6 and (candidate.count(":") < 2 or not re.search(r"[0-9A-Fa-f]", candidate)):
                continue
            try:
                ipaddress.ip_address(candidate)
            except ValueError:
                continue
            out.append(Finding("IP_ADDRESS", m.start(), m.end()))
    return out


def _phones(text: str) -> list[Finding]:
    try:
        import phonenumbers
    except ImportError:  # the `local` extra installs it; without it, a plain NANP/E.164 pattern
        return [Finding("PHONE_NUMBER", m.start(), m.end()) for m in PHONE_FALLBACK.finditer(text)]
    out = []
    for region in PHONE_REGIONS:
        for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.POSSIBLE):
            out.append(Finding("PHONE_NUMBER", m.start, m.end))
    return out


def _emails(text: str) -> list[Finding]:
    return [Finding("EMAIL_ADDRESS", m.start(), m.end()) for m in EMAIL.finditer(text)]


# Checked in this order: where findings overlap, the first one found wins.
_DETECTORS = (_emails, _cards, _ibans, _ssns, _ips, _phones)


def detect(text: str) -> list[Finding]:
    """The PII in `text`, in order, without overlaps."""
    if not text or not any(ch.isdigit() or ch == "@" for ch in text):
        return []  # every entity detected here has a digit or an '@'
    taken: list[Finding] = []
    for detector in _DETECTORS:
        for finding in detector(text):
            if all(finding.end <= t.start or finding.start >= t.end for t in taken):
                taken.append(finding)
    return sorted(taken, key=lambda f: f.start)


def mask(text: str, findings: list[Finding] | None = None) -> str:
    """`text` with each finding replaced by `<ENTITY_TYPE>`, as Databricks masks PII."""
    findings = detect(text) if findings is None else findings
    out, last = [], 0
    for finding in findings:
        out.append(text[last:finding.start])
        out.append(f"<{finding.entity}>")
        last = finding.end
    out.append(text[last:])
    return "".join(out)


__all__ = ["Finding", "detect", "iban_ok", "luhn_ok", "mask"]
