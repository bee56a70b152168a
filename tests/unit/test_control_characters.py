"""Names refuse exactly the C0 control characters and DEL."""

from __future__ import annotations

import pytest

from queue_service.core.errors import InvalidArgument
from queue_service.core.validation import _has_control_characters, require_name


def test_every_code_point_is_judged_by_the_rule():
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue  # surrogates are no characters of a str from a request
        assert _has_control_characters(f"a{chr(code)}b") == (code < 32 or code == 127), hex(code)


@pytest.mark.parametrize("name", ["job\x00", "\tjob", "jo\x1fb", "job\x7f"])
def test_a_name_with_a_control_character_is_refused(name):
    with pytest.raises(InvalidArgument, match="control characters"):
        require_name(name, "job_id", 255)


def test_names_with_other_characters_pass():
    assert require_name("job é\x80~ 1", "job_id", 255) == "job é\x80~ 1"
