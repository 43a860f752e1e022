#!/usr/bin/env python3
"""An independent check of a Landlord ErasureReceipt, with nothing of Landlord's: the
`cryptography` package (OpenSSL's Ed25519) and the `rfc8785` package (JCS).

Usage: verify_receipt.py FILE [PUBLIC_KEY_BASE64]

FILE is the receipt as JSON: the stored copy, or the resource (`kubectl get
erasurereceipt NAME -o json`). The signature is checked over the RFC 8785 canonical JSON
of the spec without its `signature` member, with PUBLIC_KEY_BASE64 when given (the
receipt must name that key) or else with the key the receipt names.

Prints "ok <SHA-256 hex of the signed bytes>" and exits 0 when the signature verifies;
prints why not and exits 1 otherwise.
"""

import base64
import hashlib
import json
import sys

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def no_duplicates(pairs):
    members = {}
    for name, value in pairs:
        if name in members:
            raise ValueError(f"the member {name!r} appears twice")
        members[name] = value
    return members


def check(path, pinned):
    with open(path, "rb") as f:
        document = json.loads(f.read().decode("utf-8"), object_pairs_hook=no_duplicates)
    if document.get("apiVersion") != "landlord.dev/v1alpha1" or document.get("kind") != "ErasureReceipt":
        raise ValueError("not an ErasureReceipt")
    spec = dict(document["spec"])
    signature = spec.pop("signature")
    if signature.get("algorithm") != "Ed25519":
        raise ValueError(f"algorithm {signature.get('algorithm')!r}, not Ed25519")
    public = base64.b64decode(signature["publicKey"], validate=True)
    if pinned is not None and public != base64.b64decode(pinned, validate=True):
        raise ValueError("signed by another key than the pinned one")
    message = rfc8785.dumps(spec)
    Ed25519PublicKey.from_public_bytes(public).verify(
        base64.b64decode(signature["value"], validate=True), message
    )
    return hashlib.sha256(message).hexdigest()


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        digest = check(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else None)
    except InvalidSignature:
        print("the signature does not verify")
        return 1
    except (ValueError, KeyError, TypeError) as err:
        print(f"not a valid receipt: {err}")
        return 1
    print("ok", digest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
