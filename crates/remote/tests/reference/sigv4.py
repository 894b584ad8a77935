"""Signs requests with botocore's SigV4 signer, the AWS SDK for Python's
own, for crates/remote/tests/sigv4.rs.

Reads a JSON list of cases on stdin, each {method, url, headers: [[name,
value], ...], body_hex, region, service, access_key, secret_key,
session_token (or null), unix_ms}; writes a JSON list holding, per case,
the headers the signer added, as [[name, value], ...] with lowercase names.
"""

import datetime
import json
import sys
from unittest import mock

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ADDED = ("authorization", "x-amz-date", "x-amz-security-token")


def sign(case):
    request = AWSRequest(
        method=case["method"],
        url=case["url"],
        data=bytes.fromhex(case["body_hex"]),
        headers=dict(case["headers"]),
    )
    credentials = Credentials(
        case["access_key"], case["secret_key"], case["session_token"]
    )
    signer = botocore.auth.SigV4Auth(credentials, case["service"], case["region"])
    at = datetime.datetime.fromtimestamp(
        case["unix_ms"] / 1000, tz=datetime.timezone.utc
    ).replace(tzinfo=None)
    with mock.patch.object(botocore.auth, "get_current_datetime", lambda *a, **k: at):
        signer.add_auth(request)
    return sorted(
        [name.lower(), value]
        for name, value in request.headers.items()
        if name.lower() in ADDED
    )


json.dump([sign(case) for case in json.load(sys.stdin)], sys.stdout)
