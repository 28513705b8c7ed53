"""The AWS credentials file reader, the signer against the independent verifier, and the frame decoder's
refusals (never an exception other than FrameError)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.providers.eventstream import FrameDecoder, FrameError, encode_frame, event_frame
from extproc.providers.sigv4 import (
    AWSCredentials,
    CredentialsFileError,
    SigV4Signer,
    read_credentials_file,
)
from tests.fakes.sigv4_verifier import KnownKey, SignatureError, verify


@pytest.mark.parametrize(
    ("text", "profile", "message"),
    [
        ("not an ini file", "default", "not an INI file"),
        ("[other]\naws_access_key_id = a\naws_secret_access_key = b\n", "default", "no profile 'default'"),
        ("[default]\naws_access_key_id = a\n", "default", "aws_secret_access_key are required"),
        ("[default]\naws_access_key_id = a\naws_secret_access_key = b\x01c\n", "default", "not allowed"),
    ],
)
def test_a_bad_credentials_file_says_what_is_wrong_without_the_secret(
    tmp_path: Path, text: str, profile: str, message: str
) -> None:
    path = tmp_path / "credentials"
    path.write_text(text)
    with pytest.raises(CredentialsFileError, match=message) as e:
        read_credentials_file(path, profile=profile)
    assert "b\x01c" not in str(e.value)


def test_named_profiles_and_session_tokens_are_read(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text(
        "[default]\naws_access_key_id = D\naws_secret_access_key = d\n"
        "[profile team]\naws_access_key_id = T\naws_secret_access_key = t\naws_session_token = tok\n"
    )
    creds = read_credentials_file(path, profile="team")
    assert creds == AWSCredentials(access_key_id="T", secret_access_key="t", session_token="tok")
    assert "t" not in repr(creds).replace("access_key_id", "").replace("AWSCredentials", "")


def test_the_signature_covers_path_body_and_host() -> None:
    signer = SigV4Signer(
        region="ap-south-1",
        credentials=AWSCredentials(access_key_id="AK", secret_access_key="sk", session_token="st"),
    )
    path, body = "/model/meta.llama3-8b-instruct-v1%3A0/converse-stream", b'{"messages":[]}'
    headers = dict(signer.sign(method="POST", path=path, body=body))
    headers["host"] = signer.host
    keys = {"AK": KnownKey("sk", "st")}
    assert (
        verify(method="POST", raw_path=path, headers=headers, body=body, keys=keys, region="ap-south-1")
        == "AK"
    )
    for change in ({"body": body + b" "}, {"raw_path": path.replace("stream", "strean")}):
        kwargs = {"method": "POST", "raw_path": path, "headers": headers, "body": body, **change}
        with pytest.raises(SignatureError):
            verify(keys=keys, region="ap-south-1", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(SignatureError):
        verify(
            method="POST",
            raw_path=path,
            headers={**headers, "host": "bedrock-runtime.us-east-1.amazonaws.com"},
            body=body,
            keys=keys,
            region="ap-south-1",
        )


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_never_escapes_as_anything_but_frame_error(data: bytes) -> None:
    decoder = FrameDecoder()
    try:
        list(decoder.feed(data))
        decoder.close()
    except FrameError:
        pass


def test_frames_round_trip_and_a_flipped_bit_anywhere_is_caught() -> None:
    frame = event_frame("contentBlockDelta", b'{"delta":{"text":"hi"}}')
    [decoded] = list(FrameDecoder().feed(frame))
    assert decoded.headers[":event-type"] == "contentBlockDelta" and decoded.payload.endswith(b'"hi"}}')
    for i in range(len(frame)):
        broken = bytearray(frame)
        broken[i] ^= 0x01
        decoder = FrameDecoder()
        with pytest.raises(FrameError):
            list(decoder.feed(bytes(broken)))
            decoder.close()
    [empty] = list(FrameDecoder().feed(encode_frame(headers={}, payload=b"")))
    assert empty.headers == {} and empty.payload == b""
