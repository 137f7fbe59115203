"""Parsing a JSON object from a request body that may be hostile."""
import json


def loads_object(body: bytes) -> dict:
    """The body as a JSON object; ValueError (never anything else) when it is not UTF-8 JSON
    holding an object: other encodings, invalid JSON, nesting too deep to parse."""
    try:
        # Decoded first: json.loads would accept UTF-16/32 bytes, which the inbox cannot store as text.
        data = json.loads(body.decode("utf-8"))
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
    except ValueError:  # UnicodeDecodeError included
        raise ValueError("the body is not UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise ValueError("the body is not a JSON object")
    return data
