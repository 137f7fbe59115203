"""Discount codes: the one generator, used for every shop and platform.

A code is typed by hand from an email, so its alphabet leaves out 0/O and 1/I; 50 random bits
make it unguessable. Platforms that lower-case codes (WooCommerce) store it lower-case, and codes
are compared case-insensitively everywhere.
"""
import secrets

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes are typed by hand


def new_code(prefix: str = "WB") -> str:
    """A random code with 50 bits of entropy (10 characters of a 32-letter alphabet), e.g. WB-7KQ2-M9XD-RT."""
    bits = int.from_bytes(secrets.token_bytes(7), "big")  # one read of the OS's randomness, 56 bits
    raw = "".join(ALPHABET[(bits >> (5 * i)) & 31] for i in range(10))
    return f"{prefix}-{raw[:4]}-{raw[4:8]}-{raw[8:]}"
