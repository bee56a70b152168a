"""Names refuse exactly the C0 control characters and DEL, wherever they stand."""

from __future__ import annotations

import pytest

from queue_service.core.errors import InvalidArgument
from queue_service.core.validation import require_name


def test_exactly_the_c0_controls_and_del_are_refused():
    refused = set()
    for code_point in range(0x110000):
        try:
            require_name(f"a{chr(code_point)}b", "queue_name", 100)
        except InvalidArgument:
            refused.add(code_point)
    assert refused == set(range(32)) | {127}


@pytest.mark.parametrize("name", ["\x00", "tail\x1f", "\x7fhead", "mid\tdle"])
def test_a_control_character_anywhere_names_the_field(name):
    with pytest.raises(InvalidArgument, match="queue_name must not contain control characters"):
        require_name(name, "queue_name", 100)
